import type { Members } from '../model/members.js'
import type { Upstream } from '../model/upstream.js'
import { NEVER, NOW, type Deadline } from './deadline.js'
import { Maglev, nextPrime } from './maglev.js'
import { ResolvedTable, type Placement } from './table.js'

/**
 * From this many upstreams, a change that needs a new Maglev table fills it in
 * slices on later turns of the event loop. Filling a 65,537-entry table costs the
 * same at any fleet size (its probes grow with the table, not the fleet;
 * bench/strategies.js, build): at 100 upstreams, within the call, that was 6.4–9.0 ms
 * per change at p99 and up to 27 ms in a rolling deploy under traffic; sliced, the
 * calls took 0.6–0.9 ms and the slices 3.05–3.34 at p99 (`node bench/membership.js --sizes 100
 * --strategies hashMaglev,hashMaglev+bf,hashMaglev,hashMaglev+bf --core
 * base=<256 build>,new=@affinity/core`). Below it a change is applied within the call,
 * so a small fleet reads its new table as soon as the call returns.
 */
export const MAGLEV_SLICE_FROM = 64

/** What a Maglev table is built from: ids and weights in Members order. */
interface Inputs {
  readonly ids: readonly string[]
  readonly weights: readonly number[]
}

/** A Maglev table and what it was built from. */
interface Built extends Inputs {
  readonly table: Maglev
}

/**
 * Tables waiting behind the one being filled, at most. A change that needs one more
 * finishes the table under way within its call (≈ 3.5 ms of fill), so that picks
 * stay a bounded number of tables behind when changes come faster than slices run.
 */
const WAITING = 4

/**
 * Whole tables kept for what-ifs: a deferred remap compares the tables of two
 * snapshots, and up to REMAPS_OWED (consistent-hash.ts) may wait for theirs.
 * ≈ 256 KiB each at the default size.
 */
const KEEP = 10

/**
 * ConsistentHash's Maglev tables. A table depends only on ids and weights, so it
 * is built on membership changes and only re-resolved on health changes. Kept:
 * the table picks read, the last few whole ones (a deferred remap compares two of
 * them), one a preview built for a membership about to be applied (the change
 * then takes it over instead of building it again), and one being filled.
 *
 * While a table is being filled, picks read the current one, resolved for the
 * newest snapshot (`interim`): an upstream that left or went down gives its
 * entries to their successors at once, one that joined takes its share when its
 * table replaces the current one. Tables are filled in the order of changes, one
 * at a time, each in slices: a change that needs a new table while one is being
 * filled waits behind it (a deferred remap compares the tables of its own two
 * snapshots, so none is skipped). Finishing the one under way within the call
 * instead took 2–6 ms of most adds during a rolling deploy at 1,000 upstreams, up
 * to 12.5 ms with the rest of the call (`npm run bench:membership`, hashMaglev).
 */
export class MaglevTables {
  readonly #tableSize: number
  #current: Built | undefined
  /** Whole tables, oldest first (the current one among them). */
  readonly #kept: Built[] = []
  #spare: { built: Built, members?: Members, placement?: Placement<Upstream> } | undefined
  #filling: Built | undefined
  /** What the tables to fill after #filling are built from, in the order of changes. */
  readonly #waiting: Inputs[] = []

  constructor (tableSize: number) {
    this.#tableSize = tableSize
  }

  /** A table is being filled (`step` goes on with it). */
  get busy (): boolean {
    return this.#filling !== undefined
  }

  /** Whether a whole table for `members` is at hand (whatIf builds none). */
  has (members: Members): boolean {
    return this.#find(members) !== undefined
  }

  /**
   * What picks read for `members`, now. A new table is filled here, or (`slices`,
   * and a table to serve from meanwhile) started, or queued behind the one being
   * filled, and left to `step`.
   */
  update (members: Members, slices: boolean): Placement<Upstream> {
    const spare = this.#spare
    this.#spare = undefined
    if (!slices || this.#current === undefined) this.#finish()
    if (this.#current === undefined || !fits(this.#current, members)) {
      const known = this.#find(members) ?? (spare !== undefined && fits(spare.built, members) ? spare.built : undefined)
      if (known !== undefined) this.#adopt(known)
      else if (!slices || this.#current === undefined) this.#adopt(this.#build(inputsOf(members), NEVER))
      else {
        this.#await(members)
        return this.#interim(members)
      }
    }
    return spare?.members === members && spare.built === this.#current ? spare.placement! : this.#resolve(members)
  }

  /** Fills the table under way until `deadline`; once whole, what picks read for `members` (the snapshot it was started for). */
  step (members: Members, deadline: Deadline): Placement<Upstream> | undefined {
    const filling = this.#filling!
    if (!filling.table.fill(deadline)) return undefined
    this.#next()
    // Kept for the remaps that wait for it; what picks read unless the current table
    // already fits the newest snapshot (a change back to a membership with a table kept).
    if (this.#current !== undefined && fits(this.#current, members)) {
      this.#keep(filling)
      return this.#resolve(members)
    }
    this.#adopt(filling)
    return fits(filling, members) ? this.#resolve(members) : this.#interim(members)
  }

  /**
   * A placement for `members` that is not applied (a preview, a deferred remap):
   * from a table kept, or from one built here and kept for the update() that
   * applies `members`.
   */
  whatIf (members: Members): Placement<Upstream> {
    let built = this.#find(members) ?? (this.#spare !== undefined && fits(this.#spare.built, members) ? this.#spare.built : undefined)
    if (built === undefined) {
      built = this.#build(inputsOf(members), NEVER)
      this.#spare = { built }
    }
    const placement = new ResolvedTable(built.table, members.eligibleMask, members.all)
    // The 'remap' event previews the snapshot the balancer then applies: keep its successors too.
    if (this.#spare?.built === built) this.#spare = { built, members, placement }
    return placement
  }

  /** A table for `members` is wanted: filled now, or after those under way (at most WAITING behind), in slices. */
  #await (members: Members): void {
    const last = this.#waiting.at(-1) ?? this.#filling
    if (last !== undefined && fits(last, members)) return
    if (this.#waiting.length === WAITING) this.#finishFilling()
    if (this.#filling === undefined) this.#filling = this.#build(inputsOf(members), NOW)
    else this.#waiting.push(inputsOf(members))
  }

  /** The next table waiting, if any, starts filling. */
  #next (): void {
    const inputs = this.#waiting.shift()
    this.#filling = inputs === undefined ? undefined : this.#build(inputs, NOW)
  }

  /** The table under way, filled now and applied; the next one waiting starts. */
  #finishFilling (): void {
    this.#filling!.table.fill(NEVER)
    this.#adopt(this.#filling!)
    this.#next()
  }

  /** Every table under way or waiting, filled now, in order. */
  #finish (): void {
    while (this.#filling !== undefined) this.#finishFilling()
  }

  #find (members: Members): Built | undefined {
    for (let i = this.#kept.length - 1; i >= 0; i--) if (fits(this.#kept[i]!, members)) return this.#kept[i]
    return undefined
  }

  #build ({ ids, weights }: Inputs, deadline: Deadline): Built {
    return { ids, weights, table: new Maglev(ids, weights, Math.max(this.#tableSize, nextPrime(ids.length)), deadline) }
  }

  #adopt (built: Built): void {
    this.#current = built
    this.#keep(built)
  }

  #keep (built: Built): void {
    if (!this.#kept.includes(built) && this.#kept.push(built) > KEEP) this.#kept.shift()
  }

  #resolve (members: Members): Placement<Upstream> {
    return new ResolvedTable(this.#current!.table, members.eligibleMask, members.all)
  }

  /** The current table's entries, each owner looked up by id in `members`: gone or not eligible there, passed over. */
  #interim (members: Members): Placement<Upstream> {
    const { ids, table } = this.#current!
    const owners = new Array<Upstream | undefined>(ids.length)
    const eligible = new Uint8Array(ids.length)
    ids.forEach((id, i) => {
      const at = members.index.get(id)
      if (at === undefined) return
      owners[i] = members.all[at]
      eligible[i] = members.eligibleMask[at]!
    })
    return new ResolvedTable(table, eligible, owners)
  }
}

function inputsOf (members: Members): Inputs {
  return { ids: members.all.map(u => u.id), weights: members.all.map(u => u.weight) }
}

/**
 * Whether `built` is the table for `members`: a table depends on ids and weights, in
 * Members order. Compared in place, not through a signature string: at 1,000
 * upstreams that string was ≈ 100 KB of garbage per change (sampling heap profiler).
 */
function fits (built: Inputs, members: Members): boolean {
  const { ids, weights } = built
  const all = members.all
  if (ids.length !== all.length) return false
  for (let i = 0; i < all.length; i++) if (ids[i] !== all[i]!.id || weights[i] !== all[i]!.weight) return false
  return true
}
