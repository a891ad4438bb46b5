import { EventEmitter } from 'node:events'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Pool } from 'undici'
import { AffinityError, invalidOption } from '../errors.js'
import type { ForwardContext, Outcome } from '../forward/context.js'
import { forwardHttp, type ClientRequest, type ForwardOptions } from '../forward/http.js'
import { createPool } from '../forward/pool.js'
import type { ClientResponse } from '../forward/error-response.js'
import { forwardUpgrade } from '../forward/upgrade.js'
import { ActiveHealth, activeConfig } from '../health/active.js'
import { PassiveHealth, passiveConfig } from '../health/passive.js'
import { Members } from '../model/members.js'
import { NOTHING_BOUND, type Remap, type RemapEvent } from '../model/remap.js'
import { roundRobin } from '../strategies/round-robin.js'
import { type Strategy } from '../strategies/strategy.js'
import { Choice, isPromise, type PickReason } from '../model/choice.js'
import { publishPick, pickChannel } from '../trace.js'
import type { BalancerStats, HealthOptions, OutcomeKind, PassiveOptions, RouteRequest, StateChange, UpstreamInfo, UpstreamInput, UpstreamState } from '../model/types.js'
import { normalizeUpstream, Upstream } from '../model/upstream.js'

export interface BalancerOptions {
  upstreams: readonly UpstreamInput[]
  /** Names this balancer in the decision trace and metrics labels (several in one process). */
  name?: string
  /** How to choose an upstream per request (default: roundRobin()). */
  strategy?: Strategy
  /** Active HTTP health checks; off when absent. */
  health?: HealthOptions
  /** Ejection after consecutive failures; on by default, `false` turns it off. */
  passive?: PassiveOptions | false
  /** Other upstreams tried when a connection fails (default 1). */
  retries?: number
  /** No response head by then: 504 (default 60 s). */
  timeoutMs?: number
  /**
   * Longest silence between two response body chunks, like nginx's
   * proxy_read_timeout (default: timeoutMs; 0: none). Past it the stream is cut,
   * visibly to the client, and counted as `idle_timeout`, not against the upstream.
   */
  idleTimeoutMs?: number
  /** undici Pool options for each upstream (connections, keepAliveTimeout, connect: TLS options…). */
  pool?: Pool.Options
  /**
   * Panic mode, as Envoy's healthy_panic_threshold: when fewer than this percentage
   * of upstreams (draining ones aside) are up, health is ignored and all of them
   * take traffic. 0 (the default) turns it off, so that none up means 503.
   */
  panicThreshold?: number
  /**
   * drain()'s default idle window: a drain completes only once no user bound to the
   * upstream has come back for this long (besides nothing in flight and no
   * WebSocket open). 0 (the default): in flight and WebSockets only.
   */
  drainIdleMs?: number
}

export interface DrainOptions {
  /** Overrides the balancer's `drainIdleMs` for this drain. */
  idleMs?: number
}

/** A membership change to preview: upstreams that would be added and ids that would be removed. */
export interface PreviewChange {
  add?: UpstreamInput | readonly UpstreamInput[]
  remove?: string | readonly string[]
}

export type BalancerEvent = 'down' | 'up' | 'added' | 'removed' | 'drained'
export type BalancerListener = (upstream: UpstreamInfo, reason: string) => void
export type RemapListener = (remap: RemapEvent) => void
/** With 'panic' and 'calm': how many upstreams (draining ones aside) are up. */
export interface PanicInfo { up: number, total: number, threshold: number }
export type PanicListener = (info: PanicInfo) => void
/** Called once per attempt as it ends; `seconds` from dispatch to the end of the response. */
export type OutcomeListener = (upstream: Upstream, kind: OutcomeKind, seconds: number) => void

/** State changes kept for stats() and the status page. */
const RECENT_CHANGES = 50

/**
 * The brand every Balancer carries, checked instead of `instanceof`: npm installs a
 * second copy of @affinity/core when the app's range and an adapter's differ, and a
 * balancer built by one copy must be accepted by the other (a class is per copy, a
 * `Symbol.for` key is one per process). Set once on the prototype: no per-instance cost.
 */
const kBalancer = Symbol.for('affinity.balancer')

/** True for a balancer from createBalancer(), whichever copy of @affinity/core built it. */
export function isBalancer (x: unknown): x is Balancer {
  return typeof x === 'object' && x !== null && (x as { [kBalancer]?: unknown })[kBalancer] === true
}

/** Each strategy instance keeps per-balancer tables, so it can serve one balancer only. */
const boundStrategies = new WeakSet<Strategy>()

/**
 * Membership, health and forwarding around one strategy. Every change of
 * membership or health builds a new `Members` snapshot and hands it to the
 * strategy once; requests then only read it.
 */
export class Balancer extends EventEmitter {
  readonly strategy: Strategy
  readonly name: string | undefined
  readonly retries: number
  readonly timeoutMs: number
  readonly idleTimeoutMs: number
  readonly #upstreams = new Map<string, Upstream>()
  readonly #totals = { load: 0 }
  readonly #poolOptions: Pool.Options
  readonly #active: ActiveHealth | undefined
  readonly #passive: PassiveHealth | undefined
  readonly #retryAfter: number
  readonly #drains = new Map<Upstream, Drain>()
  readonly #drainIdleMs: number
  readonly #states = new Map<Upstream, UpstreamState>()
  readonly #ctx: ForwardContext
  readonly #panicThreshold: number
  /** Fixed shape (every PickReason preset): the per-pick increment stays a fast keyed store. */
  readonly #picks: Record<PickReason, number> = {
    rotation: 0, 'least-load': 0, sticky: 0, assigned: 0, failover: 0, hash: 0, successor: 0, spill: 0, fallback: 0,
  }
  readonly #changes: StateChange[] = []
  #observers: OutcomeListener[] = []
  #members: Members
  #version = 0
  #closed = false

  constructor (opts: BalancerOptions) {
    super()
    if (opts === null || typeof opts !== 'object') throw new AffinityError('AFFINITY_ERR_NO_UPSTREAMS')
    if (!Array.isArray(opts.upstreams) || opts.upstreams.length === 0) throw new AffinityError('AFFINITY_ERR_NO_UPSTREAMS')
    this.name = opts.name
    if (this.name !== undefined && typeof this.name !== 'string') throw invalidOption('name', 'expected a string')
    this.retries = opts.retries ?? 1
    if (!Number.isInteger(this.retries) || this.retries < 0) throw invalidOption('retries', 'expected a whole number ≥ 0')
    this.timeoutMs = opts.timeoutMs ?? 60_000
    if (!Number.isFinite(this.timeoutMs) || this.timeoutMs <= 0) throw invalidOption('timeoutMs', 'expected milliseconds > 0')
    this.idleTimeoutMs = opts.idleTimeoutMs ?? this.timeoutMs
    if (!Number.isFinite(this.idleTimeoutMs) || this.idleTimeoutMs < 0) throw invalidOption('idleTimeoutMs', 'expected milliseconds ≥ 0 (0: no limit)')
    const strategy = opts.strategy ?? roundRobin()
    if (strategy === null || typeof strategy !== 'object' || typeof strategy.pick !== 'function' || typeof strategy.update !== 'function') {
      throw invalidOption('strategy', 'expected a strategy such as roundRobin() or stickyCookie({ secret })')
    }
    if (boundStrategies.has(strategy)) throw new AffinityError('AFFINITY_ERR_STRATEGY_IN_USE', strategy.name)
    this.strategy = strategy
    this.#poolOptions = { connect: { timeout: Math.min(10_000, this.timeoutMs) }, ...opts.pool }
    this.#panicThreshold = opts.panicThreshold ?? 0
    if (!Number.isFinite(this.#panicThreshold) || this.#panicThreshold < 0 || this.#panicThreshold > 100) throw invalidOption('panicThreshold', 'expected a percentage from 0 (off) to 100')
    this.#drainIdleMs = checkIdleMs('drainIdleMs', opts.drainIdleMs)
    const active = activeConfig(opts.health)
    const passive = passiveConfig(opts.passive)
    this.#retryAfter = Math.max(1, Math.ceil(Math.min(passive?.cooldownMs ?? Infinity, active?.intervalMs ?? Infinity, 10_000) / 1000))

    // Validate everything before creating a single pool.
    const normalized = opts.upstreams.map(normalizeUpstream)
    const seen = new Set<string>()
    for (const n of normalized) {
      if (seen.has(n.id)) throw new AffinityError('AFFINITY_ERR_DUPLICATE_ID', n.id)
      seen.add(n.id)
    }
    for (const n of normalized) {
      const u = new Upstream(n.url, n.id, n.weight, createPool(new URL(n.url).origin, this.#poolOptions))
      this.#upstreams.set(u.id, u)
      this.#states.set(u, 'up')
    }
    boundStrategies.add(strategy)
    this.#members = new Members(this.#upstreams.values(), 0, this.#totals, this.#panicThreshold)
    strategy.update(this.#members)

    const upstreams = this.#upstreams
    this.#passive = passive && new PassiveHealth(passive, (u, why) => this.#healthChanged(u, why), {
      get total () { return upstreams.size },
      get ejected () { let n = 0; for (const u of upstreams.values()) if (u.ejected) n++; return n },
      upOtherThan: (u) => { let n = 0; for (const o of upstreams.values()) if (o !== u && o.state === 'up') n++; return n },
    })
    this.#active = active && new ActiveHealth(active, (u, why) => {
      if (u.healthy && u.ejected) { u.ejected = false; this.#passive?.forget(u) }
      this.#healthChanged(u, why)
    })
    for (const u of this.#upstreams.values()) this.#active?.start(u)

    const observers = (): number => this.#observers.length
    this.#ctx = {
      retries: this.retries,
      timeoutMs: this.timeoutMs,
      idleTimeoutMs: this.idleTimeoutMs,
      get timing () { return observers() > 0 },
      repick: (choice) => {
        const r = this.strategy.pick(choice.request, choice)
        if (isPromise(r)) return r.then(u => { choice.upstream = u; this.#picked(choice); return u })
        choice.upstream = r
        this.#picked(choice)
        return r
      },
      begin: (u) => { u.inFlight++; u.requests++; this.#totals.load++ },
      settle: (u, outcome, kind, startedAt) => this.#settle(u, outcome, kind, startedAt),
      socketOpened: (u) => { u.websockets++; this.#totals.load++ },
      socketClosed: (u) => { u.websockets--; this.#totals.load--; this.#checkDrained(u) },
      retryAfter: () => this.#retryAfter,
    }
  }

  /** The current membership snapshot (what strategies see). */
  get members (): Members {
    return this.#members
  }

  /** Adds an upstream; nobody bound elsewhere moves, hash strategies move only keys onto it. */
  add (input: UpstreamInput): UpstreamInfo {
    this.#assertOpen()
    const n = normalizeUpstream(input)
    if (this.#upstreams.has(n.id)) throw new AffinityError('AFFINITY_ERR_DUPLICATE_ID', n.id)
    const u = new Upstream(n.url, n.id, n.weight, createPool(new URL(n.url).origin, this.#poolOptions))
    this.#upstreams.set(u.id, u)
    this.#states.set(u, 'up')
    const remap = this.#rebuild(this.#record(u, 'absent', 'up', 'added'))
    this.#active?.start(u)
    this.emit('added', u.info(), 'added')
    if (remap !== undefined) this.emit('remap', remap)
    return u.info()
  }

  /** Removes an upstream: no new requests; requests in flight and open WebSockets finish. */
  remove (id: string): void {
    const u = this.#get(id)
    const change = this.#record(u, this.#states.get(u) ?? u.state, 'removed', 'removed')
    this.#upstreams.delete(id)
    this.#states.delete(u)
    u.removed = true
    this.#active?.stop(u)
    this.#passive?.forget(u)
    const remap = this.#rebuild(change)
    void u.pool.close().catch(() => {})
    this.emit('removed', u.info(), 'removed')
    if (remap !== undefined) this.emit('remap', remap)
    this.#checkDrained(u)
  }

  /**
   * Stops new users going to an upstream. Strategies that bind users (stickyCookie,
   * stickyIp) keep sending bound users; hash strategies send its keys to their
   * successors. Resolves, and emits 'drained', once nothing is in flight there, no
   * WebSocket is open and, with an idle window (`idleMs`, or the balancer's
   * `drainIdleMs`), no bound user has come back for that long: the signal a
   * Kubernetes preStop hook waits for before the server is stopped. The window
   * counts from the drain's start, since visits before it were not watched. When
   * several drains of one upstream wait, the longest window applies to all.
   */
  drain (id: string, opts: DrainOptions = {}): Promise<void> {
    const u = this.#get(id)
    const idleMs = opts.idleMs === undefined ? this.#drainIdleMs : checkIdleMs('idleMs', opts.idleMs)
    if (!u.draining) {
      u.draining = true
      u.boundSeenAt = performance.now()
      this.#healthChanged(u, 'draining')
    }
    return new Promise(resolve => {
      let d = this.#drains.get(u)
      if (d === undefined) {
        d = { waiting: [], idleMs, timer: undefined }
        this.#drains.set(u, d)
      }
      d.waiting.push(resolve)
      d.idleMs = Math.max(d.idleMs, idleMs)
      this.#checkDrained(u)
    })
  }

  /** Ends a drain: the upstream takes new users again. */
  undrain (id: string): void {
    const u = this.#get(id)
    if (!u.draining) return
    u.draining = false
    const d = this.#drains.get(u)
    if (d?.timer !== undefined) {
      clearTimeout(d.timer)
      d.timer = undefined
    }
    this.#healthChanged(u, 'drain cancelled')
  }

  /**
   * Who would move if `change` were applied (upstreams added, ids removed), for
   * the balancer's strategy, without changing anything: sticky strategies report
   * the users bound to removed upstreams (adding moves nobody), hash strategies map
   * their recently seen keys through the tables before and after, and strategies
   * that bind nobody say so (`known: 'none'`). The 'remap' event reports the same
   * after each change is made.
   */
  preview (change: PreviewChange = {}): Remap {
    this.#assertOpen()
    const upstreams = new Map(this.#upstreams)
    for (const id of listOf(change.remove)) {
      if (!upstreams.delete(id)) throw new AffinityError('AFFINITY_ERR_UNKNOWN_UPSTREAM', JSON.stringify(id))
    }
    const pools: Pool[] = []
    try {
      for (const input of listOf(change.add)) {
        const n = normalizeUpstream(input)
        if (upstreams.has(n.id)) throw new AffinityError('AFFINITY_ERR_DUPLICATE_ID', n.id)
        // A would-be upstream: its pool is never used, and closed below.
        const pool = createPool(new URL(n.url).origin, this.#poolOptions)
        pools.push(pool)
        upstreams.set(n.id, new Upstream(n.url, n.id, n.weight, pool))
      }
      return this.#remapOf(this.#members, new Members(upstreams.values(), -1, this.#totals, this.#panicThreshold))
    } finally {
      for (const pool of pools) void pool.close().catch(() => {})
    }
  }

  list (): UpstreamInfo[] {
    return [...this.#upstreams.values()].map(u => u.info())
  }

  /** Picks an upstream for a request. Synchronous unless the strategy waits on a store. */
  choose (req: RouteRequest): Choice | Promise<Choice> {
    const choice = new Choice(req)
    if (this.#closed) return choice
    const r = this.strategy.pick(req, choice)
    if (isPromise(r)) return r.then(u => { choice.upstream = u; this.#picked(choice); return choice })
    choice.upstream = r
    this.#picked(choice)
    return choice
  }

  /**
   * Calls `listener` as each attempt ends, with its outcome and duration (the
   * metrics module's feed). Attempts are timed only while a listener is attached.
   * Returns the function that detaches it.
   */
  onOutcome (listener: OutcomeListener): () => void {
    this.#observers = [...this.#observers, listener]
    return () => { this.#observers = this.#observers.filter(l => l !== listener) }
  }

  /**
   * What an operator reads off HAProxy's stats page: per upstream its state,
   * counters, outcomes, bound users and health-check history; picks by reason; the
   * recent state changes. A fresh copy each call (nothing here is live).
   */
  stats (): BalancerStats {
    const bound = this.strategy.bound?.()
    return {
      at: Date.now(),
      strategy: this.strategy.name,
      panic: this.#members.panic,
      upstreams: this.#members.all.map(u => ({
        ...u.info(),
        outcomes: { ...u.outcomes },
        boundUsers: bound === undefined ? undefined : (bound.get(u.id) ?? 0),
        health: { checks: u.checksPassed + u.checksFailed, passed: u.checksPassed, failed: u.checksFailed, recent: u.recentChecks.map(c => ({ ...c })) },
        ejectionsTotal: u.ejectionsTotal,
        ejected: u.ejected,
      })),
      picks: { ...this.#picks },
      changes: this.#changes.map(c => ({ ...c })),
      store: this.strategy.storeStats?.(),
    }
  }

  /** Forwards an HTTP request to the chosen upstream and streams the answer into `res`. */
  forward (choice: Choice, req: ClientRequest, res: ClientResponse, opts: ForwardOptions): void {
    forwardHttp(this.#ctx, choice, req, res, opts)
  }

  /** Forwards an Upgrade request (WebSocket) to the chosen upstream and splices the sockets. */
  upgrade (choice: Choice, req: IncomingMessage, socket: Duplex, head: Buffer, path: string): void {
    forwardUpgrade(this.#ctx, choice, req, socket, head, path)
  }

  override on (event: 'panic' | 'calm', listener: PanicListener): this
  override on (event: 'remap', listener: RemapListener): this
  override on (event: BalancerEvent, listener: BalancerListener): this
  override on (event: BalancerEvent | 'panic' | 'calm' | 'remap', listener: BalancerListener | PanicListener | RemapListener): this {
    return super.on(event, listener)
  }

  override once (event: 'panic' | 'calm', listener: PanicListener): this
  override once (event: 'remap', listener: RemapListener): this
  override once (event: BalancerEvent, listener: BalancerListener): this
  override once (event: BalancerEvent | 'panic' | 'calm' | 'remap', listener: BalancerListener | PanicListener | RemapListener): this {
    return super.once(event, listener)
  }

  /** Stops health checks and closes upstream pools (waiting up to timeoutMs for requests in flight). */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#active?.close()
    this.#passive?.close()
    // Nothing is forwarded any more: every pending drain is complete.
    for (const d of this.#drains.values()) {
      clearTimeout(d.timer)
      for (const resolve of d.waiting) resolve()
    }
    this.#drains.clear()
    const pools = [...this.#upstreams.values()].map(u => u.pool)
    await this.strategy.close?.()
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<void>(resolve => { timer = setTimeout(resolve, Math.min(this.timeoutMs, 5000)) })
    await Promise.race([Promise.all(pools.map(p => p.close().catch(() => {}))), grace])
    clearTimeout(timer)
    await Promise.all(pools.map(p => (p.closed && !p.destroyed ? p.destroy().catch(() => {}) : undefined)))
  }

  #get (id: string): Upstream {
    this.#assertOpen()
    const u = this.#upstreams.get(id)
    if (u === undefined) throw new AffinityError('AFFINITY_ERR_UNKNOWN_UPSTREAM', JSON.stringify(id))
    return u
  }

  #assertOpen (): void {
    if (this.#closed) throw new AffinityError('AFFINITY_ERR_CLOSED')
  }

  /**
   * A new snapshot for the strategy. With `change` and someone listening for
   * 'remap', also what it moves: asked of the strategy before it updates, while
   * it still has the tables the change replaces.
   */
  #rebuild (change: StateChange): RemapEvent | undefined {
    const wasPanic = this.#members.panic
    const before = this.#members
    this.#members = new Members(this.#upstreams.values(), ++this.#version, this.#totals, this.#panicThreshold)
    const remap = this.listenerCount('remap') > 0 ? { ...this.#remapOf(before, this.#members), change: { ...change } } : undefined
    this.strategy.update(this.#members)
    if (this.#members.panic !== wasPanic) {
      const candidates = this.#members.all.filter(u => !u.draining)
      const info: PanicInfo = { up: candidates.filter(u => u.state === 'up').length, total: candidates.length, threshold: this.#panicThreshold }
      this.emit(this.#members.panic ? 'panic' : 'calm', info)
    }
    return remap
  }

  #remapOf (from: Members, to: Members): Remap {
    return this.strategy.preview?.(from, to) ?? { ...NOTHING_BOUND, flows: [] }
  }

  #healthChanged (u: Upstream, reason: string): void {
    if (u.removed || this.#closed) return
    const before = this.#states.get(u)
    const after = u.state
    if (before === after) return
    this.#states.set(u, after)
    const remap = this.#rebuild(this.#record(u, before ?? 'absent', after, reason))
    if (after === 'down') this.emit('down', u.info(), reason)
    else if (before === 'down') this.emit('up', u.info(), reason)
    if (remap !== undefined) this.emit('remap', remap)
  }

  #picked (choice: Choice): void {
    this.#picks[choice.reason]++
    // A drain's idle window restarts whenever a bound user comes back.
    const u = choice.upstream
    if (u !== undefined && u.draining && choice.reason === 'sticky') u.boundSeenAt = performance.now()
    if (pickChannel.hasSubscribers) publishPick(this.name, this.strategy.name, choice)
  }

  #record (u: Upstream, from: StateChange['from'], to: StateChange['to'], reason: string): StateChange {
    const change: StateChange = { at: Date.now(), upstream: u.id, from, to, reason }
    if (this.#changes.push(change) > RECENT_CHANGES) this.#changes.shift()
    return change
  }

  #settle (u: Upstream, outcome: Outcome, kind: OutcomeKind, startedAt: number): void {
    u.outcomes[kind]++
    if (startedAt !== 0) {
      const seconds = (performance.now() - startedAt) / 1000
      for (const l of this.#observers) l(u, kind, seconds)
    }
    u.inFlight--
    this.#totals.load--
    if (outcome === 'failure') {
      u.failures++
      this.#passive?.failure(u)
    } else if (outcome === 'ok') {
      this.#passive?.success(u)
    }
    if (u.draining || u.removed) this.#checkDrained(u)
  }

  #checkDrained (u: Upstream): void {
    const d = this.#drains.get(u)
    // An undrained upstream keeps its drain pending (until drained again): a socket
    // closing there must not complete it.
    if (d === undefined || u.load > 0 || !(u.draining || u.removed)) return
    // A removed upstream's users are re-placed elsewhere: no window to wait out.
    const wait = u.removed || d.idleMs === 0 ? 0 : u.boundSeenAt + d.idleMs - performance.now()
    if (wait > 0) {
      // Looked at again when the window would end; a bound user back meanwhile moves it.
      d.timer ??= setTimeout(() => { d.timer = undefined; this.#checkDrained(u) }, Math.ceil(wait))
      d.timer.unref()
      return
    }
    clearTimeout(d.timer)
    this.#drains.delete(u)
    this.emit('drained', u.info(), d.idleMs === 0 ? 'nothing in flight' : `nothing in flight, no bound user for ${d.idleMs} ms`)
    for (const resolve of d.waiting) resolve()
  }
}

/** A drain under way: who waits for it, its idle window, and the timer that ends the window. */
interface Drain {
  waiting: Array<() => void>
  idleMs: number
  timer: NodeJS.Timeout | undefined
}

function checkIdleMs (name: string, ms: number | undefined): number {
  if (ms === undefined) return 0
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw invalidOption(name, 'expected milliseconds ≥ 0 (0: do not wait for bound users)')
  return ms
}

Object.defineProperty(Balancer.prototype, kBalancer, { value: true })

function listOf<T> (x: T | readonly T[] | undefined): readonly T[] {
  if (x === undefined) return []
  return Array.isArray(x) ? x : [x as T]
}

export function createBalancer (opts: BalancerOptions): Balancer {
  return new Balancer(opts)
}

/** What the adapters accept: a balancer the caller owns, or the options to build one. */
export interface BalancerSource extends Partial<BalancerOptions> {
  balancer?: Balancer
}

/**
 * The adapters' shared rule: a `balancer` passed in belongs to the caller (who
 * closes it); one built here from the shorthand options is `owned` and closed with
 * the app.
 */
export function balancerFrom (opts: BalancerSource): { balancer: Balancer, owned: boolean } {
  if (opts.balancer !== undefined) {
    if (!isBalancer(opts.balancer)) throw invalidOption('balancer', 'expected a balancer from createBalancer()')
    if (opts.upstreams !== undefined || opts.strategy !== undefined) {
      throw invalidOption('balancer', 'pass either `balancer` or the shorthand (`upstreams`, `strategy`, …), not both')
    }
    return { balancer: opts.balancer, owned: false }
  }
  const { balancer: _unused, ...shorthand } = opts
  return { balancer: createBalancer(shorthand as BalancerOptions), owned: true }
}
