import { Members } from '../model/members.js'
import { NOTHING_BOUND, type Remap, type RemapEvent } from '../model/remap.js'
import { AffinityError } from '../errors.js'
import type { PoolView } from '../health/passive.js'
import { createPool } from '../forward/pool.js'
import type { StateChange, UpstreamInput, UpstreamState } from '../model/types.js'
import { normalizeUpstream, NO_TRANSPORT, Upstream, type NormalizedUpstream } from '../model/upstream.js'
import { uniqueIds, type BalancerConfig } from './config.js'
import type { Strategy } from '../strategies/strategy.js'

/** A membership change to preview: upstreams that would be added and ids that would be removed. */
export interface PreviewChange {
  add?: UpstreamInput | readonly UpstreamInput[]
  remove?: string | readonly string[]
}

/** State changes kept for stats() and the status page. */
const RECENT_CHANGES = 50

/** With 'panic' and 'calm': how many upstreams (draining ones aside) are up. */
export interface PanicInfo { up: number, total: number, threshold: number }

/** What a membership change produced, for the balancer to announce. */
export interface Changed {
  /** The state changes recorded (one, or a batch's; none when only weights changed). */
  changes: StateChange[]
  /** Who moves, when someone listens for 'remap' (asked before the strategy updates). */
  remap: RemapEvent | undefined
  /** The same, when the strategy applies the change in slices and tells who moved after them (Strategy.remapLater). */
  remapLater?: Promise<RemapEvent>
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
  /** Slow-start factors for the next snapshot (slow-start.ts). */
  readonly #ramp: () => ReadonlyMap<Upstream, number> | undefined
  readonly #upstreams = new Map<string, Upstream>()
  readonly #states = new Map<Upstream, UpstreamState>()
  readonly #changes: StateChange[] = []
  #members: Members
  #version = 0

  constructor (strategy: Strategy, panicThreshold: number, initial: readonly Upstream[], wantsRemap: () => boolean, ramp: () => ReadonlyMap<Upstream, number> | undefined = () => undefined) {
    this.#strategy = strategy
    this.#panicThreshold = panicThreshold
    this.#wantsRemap = wantsRemap
    this.#ramp = ramp
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
    return new Members(upstreams, version, this.totals, this.#panicThreshold, this.#ramp(), this.#members)
  }

  /** What passive health reads of the membership to cap ejections (health/passive.ts). */
  ejectionView (): PoolView {
    const upstreams = this.#upstreams
    return {
      get total () { return upstreams.size },
      get ejected () { let n = 0; for (const u of upstreams.values()) if (u.ejected) n++; return n },
      upOtherThan: (u) => { let n = 0; for (const o of upstreams.values()) if (o !== u && o.state === 'up') n++; return n },
    }
  }

  /** The state `u` was last announced in (undefined once removed). */
  announced (u: Upstream): UpstreamState | undefined {
    return this.#states.get(u)
  }

  /**
   * Who would move if `add` were added and the ids `remove` removed (Balancer.preview):
   * a what-if snapshot asked of the strategy; would-be upstreams open no connection.
   */
  preview (change: PreviewChange): Remap {
    const add = listOf(change.add)
    const remove = listOf(change.remove)
    const upstreams = new Map<string, Upstream>()
    for (const u of this.#upstreams.values()) upstreams.set(u.id, u)
    for (const id of remove) {
      if (!upstreams.delete(id)) throw new AffinityError('AFFINITY_ERR_UNKNOWN_UPSTREAM', JSON.stringify(id))
    }
    const added = add.map(normalizeUpstream)
    uniqueIds(added, new Set(upstreams.keys()))
    for (const n of added) upstreams.set(n.id, new Upstream(n.url, n.id, n.weight, NO_TRANSPORT))
    return this.remapOf(this.#members, this.snapshot(upstreams.values()))
  }

  /** Who would move from snapshot `from` to `to` (the strategy's estimate). */
  remapOf (from: Members, to: Members): Remap {
    return this.#strategy.preview?.(from, to) ?? { ...NOTHING_BOUND, flows: [] }
  }

  add (u: Upstream): Changed {
    this.#upstreams.set(u.id, u)
    this.#states.set(u, u.state)
    return this.#rebuild([this.#record(u, 'absent', u.state, 'added')])
  }

  remove (u: Upstream): Changed {
    const change = this.#record(u, this.#states.get(u) ?? u.state, 'removed', 'removed')
    this.#upstreams.delete(u.id)
    this.#states.delete(u)
    u.removed = true
    return this.#rebuild([change])
  }

  /**
   * Several changes, one snapshot (a source's update, removals that fall due
   * together: source-sync.ts): `removed` leave first (an id may be in both lists when
   * its URL changed), then `added` join, then the state of each of `touched` (drains
   * begun or ended, weights) is recorded where it changed. One strategy update and
   * one remap for all of them, whatever their number.
   */
  batch (added: readonly Upstream[], removed: readonly Upstream[], touched: readonly Upstream[], reason: string): Changed {
    const changes: StateChange[] = []
    for (const u of removed) {
      changes.push(this.#record(u, this.#states.get(u) ?? u.state, 'removed', reason))
      this.#upstreams.delete(u.id)
      this.#states.delete(u)
      u.removed = true
    }
    for (const u of added) {
      this.#upstreams.set(u.id, u)
      this.#states.set(u, u.state)
      changes.push(this.#record(u, 'absent', u.state, reason))
    }
    for (const u of touched) {
      const before = this.#states.get(u)
      if (before === undefined || before === u.state) continue
      this.#states.set(u, u.state)
      changes.push(this.#record(u, before, u.state, reason))
    }
    return this.#rebuild(changes)
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
    return { ...this.#rebuild([this.#record(u, before ?? 'absent', after, reason)]), from: before }
  }

  #rebuild (changes: StateChange[]): Changed {
    const wasPanic = this.#members.panic
    const before = this.#members
    this.#members = this.snapshot(this.#upstreams.values(), ++this.#version)
    let remap: RemapEvent | undefined
    let remapLater: Promise<RemapEvent> | undefined
    if (changes.length > 0 && this.#wantsRemap()) {
      const what = { change: { ...changes[0]! }, changes: changes.map(c => ({ ...c })) }
      const later = this.#strategy.remapLater?.(before, this.#members)
      if (later !== undefined) remapLater = later.then(r => ({ ...r, ...what }))
      else remap = { ...this.remapOf(before, this.#members), ...what }
    }
    this.#strategy.update(this.#members)
    const info: PanicInfo = { up: 0, total: 0, threshold: this.#panicThreshold }
    for (const u of this.#members.all) {
      if (u.draining) continue
      info.total++
      if (u.state === 'up') info.up++
    }
    return { changes, remap, remapLater, panic: this.#members.panic === wasPanic ? undefined : this.#members.panic, info }
  }

  #record (u: Upstream, from: StateChange['from'], to: StateChange['to'], reason: string): StateChange {
    const change: StateChange = { at: Date.now(), upstream: u.id, from, to, reason }
    if (this.#changes.push(change) > RECENT_CHANGES) this.#changes.shift()
    return change
  }
}

/** An upstream and its pool, with the balancer's capacity limits unless it sets its own. */
export function upstreamOf (n: NormalizedUpstream, config: BalancerConfig): Upstream {
  const u = new Upstream(n.url, n.id, n.weight, createPool(new URL(n.url).origin, config.pool))
  u.maxInFlight = n.maxInFlight ?? config.overload.maxInFlight
  u.maxWebSockets = n.maxWebSockets ?? config.overload.maxWebSockets
  return u
}

function listOf<T> (x: T | readonly T[] | undefined): readonly T[] {
  if (x === undefined) return []
  return Array.isArray(x) ? x : [x as T]
}
