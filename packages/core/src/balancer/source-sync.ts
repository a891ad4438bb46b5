import { AffinityError } from '../errors.js'
import type { DiscoveryStats } from '../model/types.js'
import { normalizeUpstream, type NormalizedUpstream, type Upstream } from '../model/upstream.js'
import type { BalancerEvent } from './events.js'
import { uniqueIds, type SourceConfig } from './config.js'
import type { Drains } from './drain.js'
import type { Changed, Membership } from './membership.js'
import type { SlowStart } from './slow-start.js'

/** What the sync needs of its balancer: its parts, and the few things only the balancer does. */
export interface SyncPort {
  readonly membership: Membership
  readonly drains: Drains
  readonly slowStart: SlowStart
  /** A new upstream with its pool, not yet a member. */
  create (n: NormalizedUpstream): Upstream
  /** It joined: its health checks start. */
  admitted (u: Upstream): void
  /** It left: health checks stop, its ramp ends, its pool closes once idle. */
  retired (u: Upstream): void
  /** Emits what a batch did: panic/calm, the upstream events with `reason`, the remap. */
  announce (changed: Changed, events: ReadonlyArray<[BalancerEvent, Upstream]>, reason: string): void
  /** A failed resolution or a refused update ('discovery-error'). */
  failed (err: Error): void
}

/** The reason every event and state change a source causes carries, to tell it from an operator's. */
export const DISCOVERY = 'discovery'

/** One source update (or a set of removals falling due), applied as one snapshot. */
interface Batch {
  added: Upstream[]
  removed: Upstream[]
  /** Members the source left out: drained, then removed. */
  leaving: Upstream[]
  /** Leaving members listed again: the source's drain ends. */
  back: Upstream[]
  /** Configured weights the source changed. */
  weights: Array<[Upstream, number]>
}

const emptyBatch = (): Batch => ({ added: [], removed: [], leaving: [], back: [], weights: [] })

/**
 * Follows a membership source (SPEC "Membership sources, slow start and grace").
 * Each update is the whole list; its difference from the members is applied in one
 * batch, one snapshot and one strategy update however many members change:
 * - a new id is added (with slow start, except in the first list: the balancer's start);
 * - a member left out starts draining — bound users keep reaching it while it
 *   answers, new users go elsewhere, hash keys go to successors — and is removed once
 *   idle (Drains: nothing in flight, no WebSocket, no bound user back for the idle
 *   window) and at the latest after `removeGraceMs`. Removals that fall due together
 *   are batched too. Kubernetes takes a terminating pod out of DNS while it still
 *   serves its grace period: its users finish there instead of moving at once, as
 *   they would behind nginx, HAProxy or Envoy, which all drop such a member;
 * - a leaving member listed again before then is undrained, unless an operator
 *   drained it (`drainedByOperator`): that drain is the operator's to end;
 * - a weight the source changes is applied; an operator's setWeight() stands until
 *   the source changes that member's weight (the source's last weight is kept per id);
 * - a URL that changes under the same id (an SRV target's new address, a pod
 *   rescheduled under its name) replaces the upstream: the old one leaves (its
 *   requests in flight and WebSockets finish over its pool), a new one with a fresh
 *   pool and health takes the id, so users bound to the id follow it; it ramps like a
 *   new member (a new address is a new process) and keeps an operator's drain.
 * Every event and recorded change carries the reason 'discovery'. An empty or
 * invalid list is refused as a discovery error: the membership stays as it was.
 */
export class SourceSync {
  readonly #port: SyncPort
  readonly #config: SourceConfig
  /** The weight the source last gave each id (an operator's setWeight may differ). */
  readonly #sourceWeights = new Map<string, number>()
  /** Leaving members, each with a token for this departure: a timer or drain of an earlier one finds another token. */
  readonly #leaves = new Map<Upstream, object>()
  readonly #due = new Set<Upstream>()
  readonly #timers = new Set<NodeJS.Timeout>()
  readonly #unsubscribe: () => void
  #flush: NodeJS.Immediate | undefined
  #ready: { promise: Promise<void>, resolve: () => void, reject: (err: Error) => void } | undefined
  #closed = false
  #stats: DiscoveryStats = { members: 0, lastUpdate: null, lastError: null, errors: 0 }

  constructor (config: SourceConfig, port: SyncPort) {
    this.#config = config
    this.#port = port
    this.#unsubscribe = config.source.subscribe(list => this.#update(list), err => this.#error(err))
  }

  /** Resolves once the first list is applied; rejects if the balancer closes first. */
  ready (): Promise<void> {
    if (this.#stats.lastUpdate !== null) return Promise.resolve()
    if (this.#closed) return Promise.reject(new AffinityError('AFFINITY_ERR_CLOSED'))
    if (this.#ready === undefined) {
      let resolve!: () => void
      let reject!: (err: Error) => void
      const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej })
      this.#ready = { promise, resolve, reject }
    }
    return this.#ready.promise
  }

  stats (): DiscoveryStats {
    const e = this.#stats.lastError
    return { ...this.#stats, lastError: e === null ? null : { ...e } }
  }

  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#unsubscribe()
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    if (this.#flush !== undefined) clearImmediate(this.#flush)
    this.#ready?.reject(new AffinityError('AFFINITY_ERR_CLOSED'))
  }

  #error (err: unknown): void {
    if (this.#closed) return
    const e = err instanceof Error ? err : new Error(String(err))
    this.#stats.errors++
    this.#stats.lastError = { at: Date.now(), code: (e as { code?: unknown }).code === undefined ? null : String((e as { code?: unknown }).code), message: e.message }
    this.#port.failed(e)
  }

  #update (list: unknown): void {
    if (this.#closed) return
    let next: NormalizedUpstream[]
    try {
      next = checkList(list)
    } catch (err) {
      this.#error(err)
      return
    }
    const initial = this.#stats.lastUpdate === null
    this.#commit(this.#difference(next), initial)
    this.#stats.members = next.length
    this.#stats.lastUpdate = Date.now()
    if (initial) this.#ready?.resolve()
  }

  /** The batch that brings the members to `next`. */
  #difference (next: readonly NormalizedUpstream[]): Batch {
    const { membership } = this.#port
    const b = emptyBatch()
    const listed = new Set<string>()
    for (const n of next) {
      listed.add(n.id)
      const before = this.#sourceWeights.get(n.id)
      this.#sourceWeights.set(n.id, n.weight)
      const u = membership.get(n.id)
      if (u === undefined) {
        b.added.push(this.#port.create(n))
      } else if (n.url !== u.url) {
        const v = this.#port.create({ ...n, weight: before === n.weight ? u.weight : n.weight })
        v.drainedByOperator = v.draining = u.drainedByOperator
        v.boundSeenAt = u.boundSeenAt
        b.removed.push(u)
        b.added.push(v)
      } else {
        if (u.leaving) b.back.push(u)
        if (before !== n.weight && u.weight !== n.weight) b.weights.push([u, n.weight])
      }
    }
    for (const u of membership.values()) {
      if (listed.has(u.id) || u.leaving) continue
      // No grace: removed at once, as the anchors do.
      if (this.#config.removeGraceMs === 0) b.removed.push(u)
      else b.leaving.push(u)
    }
    return b
  }

  /** Applies `b` in one snapshot, announces it, and starts the drains of those leaving. */
  #commit (b: Batch, initial = false): void {
    const port = this.#port
    const now = performance.now()
    const events: Array<[BalancerEvent, Upstream]> = []
    const readded = new Set(b.added.map(v => v.id))
    for (const u of b.removed) {
      this.#leaves.delete(u)
      if (!readded.has(u.id)) this.#sourceWeights.delete(u.id)
      port.retired(u)
      events.push(['removed', u])
    }
    // The first list is the balancer's start: no slow start then (HAProxy does not either).
    for (const u of b.added) {
      if (!initial) port.slowStart.start(u)
      events.push(['added', u])
    }
    for (const [u, w] of b.weights) {
      u.weight = w
      events.push(['weight', u])
    }
    for (const u of b.leaving) {
      this.#leaves.set(u, {})
      u.leaving = true
      if (u.draining) continue // an operator's drain already holds it
      u.draining = true
      u.boundSeenAt = now
      events.push(['draining', u])
    }
    for (const u of b.back) {
      this.#leaves.delete(u)
      u.leaving = false
      if (u.drainedByOperator) continue
      u.draining = false
      port.drains.cancel(u)
      events.push(['undrained', u])
    }
    const changed = port.membership.batch(b.added, b.removed, [...b.leaving, ...b.back], DISCOVERY)
    for (const u of b.added) port.admitted(u)
    port.announce(changed, events, DISCOVERY)
    for (const u of b.removed) port.drains.check(u)
    if (b.leaving.length > 0) this.#letGo(b.leaving)
  }

  /** Removal of `leaving` once each is idle, and of all of them at the latest after removeGraceMs. */
  #letGo (leaving: readonly Upstream[]): void {
    const departures = leaving.map(u => [u, this.#leaves.get(u)!] as const)
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      for (const [u, token] of departures) this.#fallDue(u, token)
    }, this.#config.removeGraceMs)
    timer.unref()
    this.#timers.add(timer)
    for (const [u, token] of departures) {
      void this.#port.drains.wait(u, this.#config.drainIdleMs).then(() => this.#fallDue(u, token))
    }
  }

  /** `u` may go, if this departure still holds: removals falling due in one turn of the event loop go together. */
  #fallDue (u: Upstream, token: object): void {
    if (this.#closed || u.removed || this.#leaves.get(u) !== token) return
    this.#due.add(u)
    this.#flush ??= setImmediate(() => {
      this.#flush = undefined
      const removed = [...this.#due].filter(x => !x.removed && this.#leaves.has(x))
      this.#due.clear()
      if (removed.length > 0 && !this.#closed) this.#commit({ ...emptyBatch(), removed })
    })
  }
}

/** A source's list, checked as `upstreams` is: anything else is a discovery error, never applied. */
function checkList (list: unknown): NormalizedUpstream[] {
  if (!Array.isArray(list)) throw new AffinityError('AFFINITY_ERR_DISCOVERY_UPDATE', `expected the whole list of upstreams, got ${list === null ? 'null' : typeof list}`)
  if (list.length === 0) throw new AffinityError('AFFINITY_ERR_DISCOVERY_UPDATE', 'an empty list (a source reports finding nothing as an error: a balancer is never emptied)')
  try {
    const next = list.map(normalizeUpstream)
    uniqueIds(next)
    return next
  } catch (err) {
    const refused = new AffinityError('AFFINITY_ERR_DISCOVERY_UPDATE', `an invalid list (${(err as Error).message})`)
    refused.cause = err
    throw refused
  }
}
