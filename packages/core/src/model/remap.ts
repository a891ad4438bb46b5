import type { Members } from './members.js'
import type { StateChange } from './types.js'

/** Users (or keys) that move from one upstream to another. */
export interface RemapFlow {
  from: string
  /**
   * Where they go; null when it is decided only as each one comes back: a sticky
   * strategy's users are placed afresh by `assign` at their next request (or none is
   * left to take them).
   */
  to: string | null
  count: number
}

/**
 * Who a membership change moves (Balancer.preview before it, the 'remap' event
 * after it), so an app can hand state over.
 * - 'bound': the users a sticky strategy has bound (stickyCookie: seen within
 *   `activeMs` by this instance; stickyIp: the stick table's entries). Adding an
 *   upstream moves none; removing one, or one going down, moves exactly its users.
 * - 'sampled': a hash strategy's recently seen keys (the last 4,096 picks, each
 *   distinct key once), mapped through the tables before and after: exact for those
 *   keys, an estimate of the share for all of them. Bounded loads are left out: a
 *   spill depends on the load at the moment of the pick.
 * - 'none': the strategy binds nobody (roundRobin, leastConnections): nothing to move.
 * - 'uncounted': a stickyIp store that cannot count its entries.
 */
export interface Remap {
  known: 'bound' | 'sampled' | 'none' | 'uncounted'
  /** Users or distinct keys known before the change. */
  total: number
  /** Of those, how many change upstream. */
  moved: number
  /** Per source and destination, the moving ones only; sorted by from, then to. */
  flows: RemapFlow[]
}

/** The 'remap' event: what moved, and the change that moved it. */
export interface RemapEvent extends Remap {
  /** The change (a batch's first, when a source's update made several at once). */
  change: StateChange
  /** Every change of this snapshot: one, or all of a source's update (source-sync.ts). */
  changes: StateChange[]
}

export const NOTHING_BOUND: Readonly<Remap> = Object.freeze({ known: 'none', total: 0, moved: 0, flows: [] })

/** Adds up moves by (from, to). */
export class FlowTally {
  readonly #counts = new Map<string, Map<string | null, number>>()
  moved = 0

  add (from: string, to: string | null, n = 1): void {
    if (n === 0) return
    let row = this.#counts.get(from)
    if (row === undefined) {
      row = new Map()
      this.#counts.set(from, row)
    }
    row.set(to, (row.get(to) ?? 0) + n)
    this.moved += n
  }

  result (known: Remap['known'], total: number): Remap {
    const flows: RemapFlow[] = []
    for (const [from, row] of this.#counts) for (const [to, count] of row) flows.push({ from, to, count })
    flows.sort((a, b) => compare(a.from, b.from) || compare(a.to ?? '', b.to ?? ''))
    return { known, total, moved: this.moved, flows }
  }
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/**
 * A sticky strategy's remap from its bound users per upstream id: users stay
 * wherever their upstream still keeps them (up or draining), and those of an
 * upstream that kept them before but is gone or down after are placed afresh
 * (to: null). Users of an upstream already down before were moving anyway.
 */
export function boundRemap (counts: ReadonlyMap<string, number> | undefined, from: Members, to: Members): Remap {
  if (counts === undefined) return { known: 'uncounted', total: 0, moved: 0, flows: [] }
  const tally = new FlowTally()
  let total = 0
  from.all.forEach((u, i) => {
    const n = counts.get(u.id) ?? 0
    total += n
    if (from.keptMask[i] === 0) return
    const j = to.index.get(u.id)
    if (j === undefined || to.keptMask[j] === 0) tally.add(u.id, null, n)
  })
  return tally.result('bound', total)
}
