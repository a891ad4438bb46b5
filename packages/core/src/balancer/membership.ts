import { Members } from '../model/members.js'
import { NOTHING_BOUND, type Remap, type RemapEvent } from '../model/remap.js'
import type { StateChange, UpstreamState } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import type { Strategy } from '../strategies/strategy.js'

/** State changes kept for stats() and the status page. */
const RECENT_CHANGES = 50

/** With 'panic' and 'calm': how many upstreams (draining ones aside) are up. */
export interface PanicInfo { up: number, total: number, threshold: number }

/** What a membership change produced, for the balancer to announce. */
export interface Changed {
  change: StateChange
  /** Who moves, when someone listens for 'remap' (asked before the strategy updates). */
  remap: RemapEvent | undefined
  /** Panic mode switched on (true) or off (false) with this change. */
  panic: boolean | undefined
  info: PanicInfo
}

/**
 * The upstream set and its snapshots: every change of membership, weight or health
 * builds a new `Members` and hands it to the strategy once (HAProxy's lb_ops
 * "server up / down / weight changed" callbacks), so requests only read. Also
 * keeps the state each upstream was last announced in and the recent changes.
 * Called on membership and health changes only, never per request.
 */
export class Membership {
  /** Live totals the snapshots share (bounded loads read `load`). */
  readonly totals = { load: 0 }
  readonly #strategy: Strategy
  readonly #panicThreshold: number
  readonly #wantsRemap: () => boolean
  readonly #upstreams = new Map<string, Upstream>()
  readonly #states = new Map<Upstream, UpstreamState>()
  readonly #changes: StateChange[] = []
  #members: Members
  #version = 0

  constructor (strategy: Strategy, panicThreshold: number, initial: readonly Upstream[], wantsRemap: () => boolean) {
    this.#strategy = strategy
    this.#panicThreshold = panicThreshold
    this.#wantsRemap = wantsRemap
    for (const u of initial) {
      this.#upstreams.set(u.id, u)
      this.#states.set(u, 'up')
    }
    this.#members = this.snapshot(this.#upstreams.values(), 0)
    strategy.update(this.#members)
  }

  /** The current snapshot (what the strategy sees). */
  get members (): Members {
    return this.#members
  }

  get size (): number {
    return this.#upstreams.size
  }

  get (id: string): Upstream | undefined {
    return this.#upstreams.get(id)
  }

  values (): IterableIterator<Upstream> {
    return this.#upstreams.values()
  }

  /** The last state changes, oldest first (copies). */
  changes (): StateChange[] {
    return this.#changes.map(c => ({ ...c }))
  }

  /** A snapshot over `upstreams` that is not applied: for what-if previews (version -1). */
  snapshot (upstreams: Iterable<Upstream>, version = -1): Members {
    return new Members(upstreams, version, this.totals, this.#panicThreshold)
  }

  /** Who would move from snapshot `from` to `to` (the strategy's estimate). */
  remapOf (from: Members, to: Members): Remap {
    return this.#strategy.preview?.(from, to) ?? { ...NOTHING_BOUND, flows: [] }
  }

  add (u: Upstream): Changed {
    this.#upstreams.set(u.id, u)
    this.#states.set(u, u.state)
    return this.#rebuild(this.#record(u, 'absent', u.state, 'added'))
  }

  remove (u: Upstream): Changed {
    const change = this.#record(u, this.#states.get(u) ?? u.state, 'removed', 'removed')
    this.#upstreams.delete(u.id)
    this.#states.delete(u)
    u.removed = true
    return this.#rebuild(change)
  }

  /** A weight changed: a new snapshot, no state change recorded. */
  reweighed (): void {
    this.#members = this.snapshot(this.#upstreams.values(), ++this.#version)
    this.#strategy.update(this.#members)
  }

  /** `u`'s state may have changed (health, drain): a new snapshot if it did. */
  stateChanged (u: Upstream, reason: string): (Changed & { from: UpstreamState | undefined }) | undefined {
    if (u.removed) return undefined
    const before = this.#states.get(u)
    const after = u.state
    if (before === after) return undefined
    this.#states.set(u, after)
    return { ...this.#rebuild(this.#record(u, before ?? 'absent', after, reason)), from: before }
  }

  #rebuild (change: StateChange): Changed {
    const wasPanic = this.#members.panic
    const before = this.#members
    this.#members = this.snapshot(this.#upstreams.values(), ++this.#version)
    const remap = this.#wantsRemap() ? { ...this.remapOf(before, this.#members), change: { ...change } } : undefined
    this.#strategy.update(this.#members)
    const candidates = this.#members.all.filter(u => !u.draining)
    const info: PanicInfo = { up: candidates.filter(u => u.state === 'up').length, total: candidates.length, threshold: this.#panicThreshold }
    return { change, remap, panic: this.#members.panic === wasPanic ? undefined : this.#members.panic, info }
  }

  #record (u: Upstream, from: StateChange['from'], to: StateChange['to'], reason: string): StateChange {
    const change: StateChange = { at: Date.now(), upstream: u.id, from, to, reason }
    if (this.#changes.push(change) > RECENT_CHANGES) this.#changes.shift()
    return change
  }
}
