import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { AffinityError } from '../errors.js'
import { Admission } from '../forward/admission.js'
import type { ForwardContext } from '../forward/context.js'
import type { ClientResponse } from '../forward/error-response.js'
import { forwardHttp, type ClientRequest, type ForwardOptions } from '../forward/http.js'
import { closePools } from '../forward/pool.js'
import { forwardUpgrade, type UpgradeOptions } from '../forward/upgrade.js'
import { ActiveHealth } from '../health/active.js'
import { PassiveHealth } from '../health/passive.js'
import { Choice, isPromise, type PickResult } from '../model/choice.js'
import type { Members } from '../model/members.js'
import type { Remap } from '../model/remap.js'
import type { BalancerStats, RouteRequest, UpstreamInfo, UpstreamInput } from '../model/types.js'
import { checkWeight, normalizeUpstream, type Upstream } from '../model/upstream.js'
import { pickWithRoom } from '../strategies/pick-with-room.js'
import type { Strategy } from '../strategies/strategy.js'
import { kBalancer } from './brand.js'
import { balancerConfig, drainIdleMs, type BalancerConfig, type BalancerOptions } from './config.js'
import { Drains, type DrainOptions } from './drain.js'
import { Membership, upstreamOf, type PreviewChange } from './membership.js'
import { SlowStart } from './slow-start.js'
import { SourceSync } from './source-sync.js'
import { Pressure } from './pressure.js'
import { balancerStats } from './stats.js'
import { Books } from './books.js'
import { BalancerEmitter, type OutcomeListener, type QueueWaitListener } from './events.js'

/** Each strategy instance keeps per-balancer tables, so it can serve one balancer only. */
const boundStrategies = new WeakSet<Strategy>()

/**
 * Membership, health and forwarding around one strategy. The parts: `config.ts`
 * checks the options, `Membership` keeps the upstream set and the snapshots the
 * strategy reads, `SourceSync` applies a membership source's lists to it,
 * `SlowStart` ramps the weight of newcomers, `Drains` completes drains, passive and
 * active health watch the upstreams, and the forwarders (forward/) carry requests
 * through a narrow `ForwardContext`. This class wires them and is the public face.
 */
export class Balancer extends BalancerEmitter {
  readonly strategy: Strategy
  readonly name: string | undefined
  readonly retries: number
  readonly timeoutMs: number
  readonly idleTimeoutMs: number
  readonly #config: BalancerConfig
  readonly #membership: Membership
  readonly #drains: Drains
  readonly #slowStart: SlowStart
  /** With a membership source: follows it (source-sync.ts). */
  readonly #sync: SourceSync | undefined
  readonly #active: ActiveHealth | undefined
  readonly #passive: PassiveHealth | undefined
  readonly #ctx: ForwardContext
  readonly #admission: Admission
  readonly #pressure: Pressure
  readonly #books: Books
  #closed = false

  constructor (opts: BalancerOptions) {
    super()
    const config = balancerConfig(opts)
    if (boundStrategies.has(config.strategy)) throw new AffinityError('AFFINITY_ERR_STRATEGY_IN_USE', config.strategy.name)
    boundStrategies.add(config.strategy)
    this.#config = config
    this.strategy = config.strategy
    this.name = config.name
    this.retries = config.retries
    this.timeoutMs = config.timeoutMs
    this.idleTimeoutMs = config.idleTimeoutMs
    this.#admission = new Admission(config.overload.queue, config.overload.retryBudget, {
      outcome: (u, kind, startedAt) => this.#books.turnedAway(u, kind, startedAt),
      waited: (u, ms, result) => { for (const l of this.#books.waitObservers) l(u, ms / 1000, result) },
    })
    this.#pressure = new Pressure(info => this.emit('pressure', info))
    config.strategy.onEvict?.(table => this.#pressure.note(table))
    this.#slowStart = new SlowStart(config.slowStartMs, (steps) => {
      if (this.#closed) return
      this.#membership.reweighed()
      for (const [u, factor] of steps) this.rampStep(u, factor === 1)
    })
    this.#membership = new Membership(config.strategy, config.panicThreshold, config.upstreams.map(n => upstreamOf(n, config)), () => this.listenerCount('remap') > 0, () => this.#slowStart.factors())
    this.#drains = new Drains((u, why) => this.emit('drained', u.info(), why))
    const membership = this.#membership
    this.#passive = config.passive && new PassiveHealth(config.passive, (u, why) => this.#stateChanged(u, why), membership.ejectionView())
    this.#active = config.active && new ActiveHealth(config.active, (u, why) => {
      if (u.healthy && u.ejected) { u.ejected = false; this.#passive?.forget(u) }
      this.#stateChanged(u, why)
    })
    for (const u of membership.values()) this.#active?.start(u)
    this.#books = new Books({
      config,
      totals: membership.totals,
      admission: this.#admission,
      drains: this.#drains,
      passive: this.#passive,
      pick: (choice) => this.#pick(choice),
    }, config.name, config.strategy.name)
    this.#ctx = this.#books.forwardContext()
    this.#sync = config.source && new SourceSync(config.source, {
      membership,
      drains: this.#drains,
      slowStart: this.#slowStart,
      create: (n) => upstreamOf(n, config),
      admitted: (u) => this.#active?.start(u),
      retired: (u) => this.#retire(u),
      announce: (changed, events, reason) => this.announce(changed, events, reason),
      failed: (err) => this.emit('discovery-error', err),
    })
  }

  /**
   * Resolves once the first membership is known: at once for a list; with a source,
   * once its first list is applied (until then requests get 503, none up). Rejects
   * with AFFINITY_ERR_CLOSED if the balancer closes first.
   */
  ready (): Promise<void> {
    return this.#sync?.ready() ?? (this.#closed ? Promise.reject(new AffinityError('AFFINITY_ERR_CLOSED')) : Promise.resolve())
  }

  /** The current membership snapshot (what strategies see). */
  get members (): Members {
    return this.#membership.members
  }

  /** Adds an upstream; nobody bound elsewhere moves, hash strategies move only keys onto it. */
  add (input: UpstreamInput): UpstreamInfo {
    this.#assertOpen()
    if (this.#sync !== undefined) throw new AffinityError('AFFINITY_ERR_SOURCE_MANAGED', 'add()')
    const n = normalizeUpstream(input)
    if (this.#membership.get(n.id) !== undefined) throw new AffinityError('AFFINITY_ERR_DUPLICATE_ID', n.id)
    const u = upstreamOf(n, this.#config)
    this.#slowStart.start(u)
    const changed = this.#membership.add(u)
    this.#active?.start(u)
    this.announce(changed, [['added', u]])
    return u.info()
  }

  /**
   * Removes an upstream: no new requests; requests in flight and open WebSockets
   * finish. With a membership source, add() and remove() are refused
   * (AFFINITY_ERR_SOURCE_MANAGED): the source's next list would undo them.
   */
  remove (id: string): void {
    const u = this.#get(id)
    if (this.#sync !== undefined) throw new AffinityError('AFFINITY_ERR_SOURCE_MANAGED', 'remove()')
    const changed = this.#membership.remove(u)
    this.#retire(u)
    this.announce(changed, [['removed', u]])
    this.#drains.check(u)
  }

  /**
   * Stops new users going to an upstream. Strategies that bind users (stickyCookie,
   * stickyIp) keep sending bound users; hash strategies send its keys to their
   * successors. Resolves, and emits 'drained', once nothing is in flight there, no
   * WebSocket is open and, with an idle window (`idleMs`, or the balancer's
   * `drainIdleMs`), no bound user has come back for that long (see Drains).
   * The drain is the operator's: a member its source leaves out and lists again
   * stays drained until undrain().
   */
  drain (id: string, opts: DrainOptions = {}): Promise<void> {
    const u = this.#get(id)
    const idleMs = opts.idleMs === undefined ? this.#config.drainIdleMs : drainIdleMs('idleMs', opts.idleMs)
    if (!u.drainedByOperator) {
      u.drainedByOperator = true
      if (!u.draining) {
        u.draining = true
        u.boundSeenAt = performance.now()
        this.#stateChanged(u, 'draining')
      }
      // Reported even when its source already drains it: the operator's drain outlasts the source's.
      this.emit('draining', u.info(), 'draining')
    }
    return this.#drains.wait(u, idleMs)
  }

  /**
   * Changes an upstream's weight. Strategies rebuild from the new snapshot: round
   * robin and least connections share out by it at once; hash strategies move only
   * keys onto or off this upstream (its points or table share grow or shrink);
   * sticky strategies keep every bound user and place new ones by it.
   */
  setWeight (id: string, weight: number): UpstreamInfo {
    const u = this.#get(id)
    const w = checkWeight(id, weight)
    if (w !== u.weight) {
      u.weight = w
      this.#membership.reweighed()
      this.emit('weight', u.info(), `weight ${w}`)
    }
    return u.info()
  }

  /**
   * Ends an operator's drain: the upstream takes new users again, unless its source
   * left it out (it drains until it is listed again or removed; the event is still
   * emitted, with state 'draining').
   */
  undrain (id: string): void {
    const u = this.#get(id)
    if (!u.drainedByOperator) return
    u.drainedByOperator = false
    if (!u.leaving) {
      u.draining = false
      this.#drains.cancel(u)
      this.#stateChanged(u, 'drain cancelled')
    }
    this.emit('undrained', u.info(), 'drain cancelled')
  }

  /**
   * Who would move if `change` were applied (upstreams added, ids removed), for
   * the balancer's strategy, without changing anything: sticky strategies report
   * the users bound to removed upstreams (adding moves nobody), hash strategies map
   * their recently seen keys through the tables before and after, and strategies
   * that bind nobody say so (`known: 'none'`). The 'remap' event reports the same
   * after each change is made. Would-be upstreams open no connection.
   */
  preview (change: PreviewChange = {}): Remap {
    this.#assertOpen()
    return this.#membership.preview(change)
  }

  list (): UpstreamInfo[] {
    return [...this.#membership.values()].map(u => u.info())
  }

  /** Picks an upstream for a request. Synchronous unless the strategy waits on a store. */
  choose (req: RouteRequest): Choice | Promise<Choice> {
    const choice = new Choice(req)
    if (this.#closed) return choice
    const r = this.#pick(choice)
    if (isPromise(r)) return r.then(u => { choice.upstream = u; this.#books.picked(choice); return choice })
    choice.upstream = r
    this.#books.picked(choice)
    return choice
  }

  /**
   * Calls `listener` as each attempt ends, with its outcome and duration (the
   * metrics module's feed). Attempts are timed only while a listener is attached.
   * Returns the function that detaches it.
   */
  onOutcome (listener: OutcomeListener): () => void {
    return this.#books.observe('observers', listener)
  }

  /**
   * Calls `listener` as each wait in an upstream's queue ends (admitted, timed out,
   * client gone, moved: the metrics' queue-wait histogram). Returns the function that
   * detaches it.
   */
  onQueueWait (listener: QueueWaitListener): () => void {
    return this.#books.observe('waitObservers', listener)
  }

  /** Per upstream state, counters, outcomes, bound users and checks; picks by reason; recent changes. */
  stats (): BalancerStats {
    const a = this.#admission
    return balancerStats(this.members, this.strategy, this.#books.picks, this.#membership.changes(), this.#sync?.stats(), { made: a.retriesMade, refused: a.retriesRefused })
  }

  /** Forwards an HTTP request to the chosen upstream and streams the answer into `res`. */
  forward (choice: Choice, req: ClientRequest, res: ClientResponse, opts: ForwardOptions): void {
    forwardHttp(this.#ctx, choice, req, res, opts)
  }

  /**
   * Forwards an Upgrade request (WebSocket) to the chosen upstream and splices the
   * sockets. `opts`: a mount's policy (its Host rule and request-header hook) and the
   * framework's request that hook gets.
   */
  upgrade (choice: Choice, req: IncomingMessage, socket: Duplex, head: Buffer, path: string, opts?: UpgradeOptions): void {
    forwardUpgrade(this.#ctx, choice, req, socket, head, path, opts)
  }

  /** Stops health checks and closes upstream pools (waiting up to timeoutMs for requests in flight). */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#sync?.close()
    this.#slowStart.close()
    this.#active?.close()
    this.#passive?.close()
    this.#pressure.close()
    this.#admission.close(this.#membership.values())
    this.#drains.completeAll()
    const pools = [...this.#membership.values()].map(u => u.pool)
    await this.strategy.close?.()
    await closePools(pools, Math.min(this.timeoutMs, 5000))
  }

  /**
   * The strategy's pick, steered away from upstreams without capacity (admission's
   * `aside`: nothing in the common case) for stateless picks and new users; when
   * every candidate is full the request waits at the one the strategy picks.
   */
  #pick (choice: Choice): PickResult {
    const req = choice.request
    const aside = this.#admission.aside(req)
    return aside === undefined ? this.strategy.pick(req, choice) : pickWithRoom(this.strategy, req, choice, aside)
  }

  #get (id: string): Upstream {
    this.#assertOpen()
    const u = this.#membership.get(id)
    if (u === undefined) throw new AffinityError('AFFINITY_ERR_UNKNOWN_UPSTREAM', JSON.stringify(id))
    return u
  }

  /** Out of the membership: health checks stop, its ramp ends, its pool closes once its requests finish. */
  #retire (u: Upstream): void {
    this.#active?.stop(u)
    this.#passive?.forget(u)
    this.#slowStart.stop(u)
    this.#admission.forget(u)
    void u.pool.close().catch(() => {})
  }

  #assertOpen (): void {
    if (this.#closed) throw new AffinityError('AFFINITY_ERR_CLOSED')
  }

  #stateChanged (u: Upstream, reason: string): void {
    if (this.#closed) return
    // Back from down: slow start, in the snapshot that takes it back.
    const recovers = this.#membership.announced(u) === 'down' && u.state !== 'down'
    if (recovers) this.#slowStart.start(u)
    const changed = this.#membership.stateChanged(u, reason)
    if (changed === undefined) return
    const after = changed.changes[0]!.to
    // Nobody waits for an upstream that went down: its queue picks again.
    if (after === 'down') this.#admission.moveAway(u)
    this.announce(changed, after === 'down' ? [['down', u]] : recovers ? [['up', u]] : [], reason)
  }
}

Object.defineProperty(Balancer.prototype, kBalancer, { value: true })

export function createBalancer (opts: BalancerOptions): Balancer {
  return new Balancer(opts)
}
