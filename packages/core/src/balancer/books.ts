import type { Admission } from '../forward/admission.js'
import type { ForwardContext, Outcome } from '../forward/context.js'
import type { PassiveHealth } from '../health/passive.js'
import { isPromise, type Choice, type PickReason, type PickResult } from '../model/choice.js'
import type { OutcomeKind } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { publishPick, pickChannel } from '../trace.js'
import type { BalancerConfig } from './config.js'
import type { Drains } from './drain.js'
import type { OutcomeListener, QueueWaitListener } from './events.js'

/** What the books write to: the balancer's other parts. */
export interface BooksParts {
  readonly config: BalancerConfig
  readonly totals: { load: number }
  readonly admission: Admission
  readonly drains: Drains
  readonly passive: PassiveHealth | undefined
  /** The strategy's pick, steered by capacity (Balancer #pick). */
  pick (choice: Choice): PickResult
}

/**
 * The balancer's books, kept on the request path: picks by reason, in-flight and
 * load counters, outcomes, the observers that time attempts (metrics), passive
 * health fed by how attempts end, drains checked as load drops. It also builds the
 * narrow ForwardContext the forwarders see. One per balancer; every method here
 * runs per request or per attempt, so none allocates beyond the outcome feed.
 */
export class Books {
  /** Fixed shape (every PickReason preset): the per-pick increment stays a fast keyed store. */
  readonly picks: Record<PickReason, number> = {
    rotation: 0, 'least-load': 0, sticky: 0, assigned: 0, failover: 0, hash: 0, successor: 0, spill: 0, capped: 0, fallback: 0,
  }

  observers: OutcomeListener[] = []
  waitObservers: QueueWaitListener[] = []

  /** Adds a listener to one of the observer lists; returns the function that detaches it. */
  observe<K extends 'observers' | 'waitObservers'> (list: K, listener: this[K][number]): () => void {
    this[list] = [...this[list], listener] as this[K]
    return () => { this[list] = (this[list] as Array<this[K][number]>).filter(l => l !== listener) as this[K] }
  }
  readonly #parts: BooksParts
  readonly #name: string | undefined
  readonly #strategy: string

  constructor (parts: BooksParts, name: string | undefined, strategy: string) {
    this.#parts = parts
    this.#name = name
    this.#strategy = strategy
  }

  /** A pick was made (first or re-pick): counted, traced, and a draining upstream's idle window restarted. */
  picked (choice: Choice): void {
    this.picks[choice.reason]++
    // A drain's idle window restarts whenever a bound user comes back.
    const u = choice.upstream
    if (u !== undefined && u.draining && choice.reason === 'sticky') u.boundSeenAt = performance.now()
    if (pickChannel.hasSubscribers) publishPick(this.#name, this.#strategy, choice)
  }

  /**
   * A request turned away for capacity (queue full, queue timeout, no WebSocket
   * room) or whose client left while it waited: an outcome of `u`, never charged
   * to it (no failure, no passive health). `since`: when it started waiting (0: it
   * did not wait).
   */
  turnedAway (u: Upstream, kind: OutcomeKind, since: number): void {
    u.outcomes[kind]++
    const seconds = since === 0 ? 0 : (performance.now() - since) / 1000
    for (const l of this.observers) l(u, kind, seconds)
  }

  /** An attempt ended: its outcome, the load it held, and passive health's verdict (the blame rule decided `outcome`). */
  settle (u: Upstream, outcome: Outcome, kind: OutcomeKind, startedAt: number, upgrade: boolean): void {
    u.outcomes[kind]++
    if (startedAt !== 0) {
      const seconds = (performance.now() - startedAt) / 1000
      for (const l of this.observers) l(u, kind, seconds)
    }
    u.inFlight--
    this.#parts.totals.load--
    this.#parts.admission.ended(u, upgrade)
    if (outcome === 'failure') {
      u.failures++
      this.#parts.passive?.failure(u)
    } else if (outcome === 'ok') {
      this.#parts.passive?.success(u)
    }
    if (u.draining || u.removed) this.#parts.drains.check(u)
  }

  /** What the forwarders may do to the balancer: count, settle, re-pick, wait for room. */
  forwardContext (): ForwardContext {
    const { config, totals, admission, drains } = this.#parts
    const observers = (): OutcomeListener[] => this.observers
    return {
      retries: config.retries,
      timeoutMs: config.timeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      get timing () { return observers().length > 0 },
      repick: (choice) => {
        const r = this.#parts.pick(choice)
        if (isPromise(r)) return r.then(u => { choice.upstream = u; this.picked(choice); return u })
        choice.upstream = r
        this.picked(choice)
        return r
      },
      admit: (u, w) => admission.admit(u, w),
      leave: (u, w) => admission.leave(u, w),
      begin: (u, upgrade) => { u.inFlight++; u.requests++; totals.load++; admission.began(u, upgrade) },
      settle: (u, outcome, kind, startedAt, upgrade) => this.settle(u, outcome, kind, startedAt, upgrade),
      admitSocket: (u) => {
        if (admission.socketRoom(u)) return true
        this.turnedAway(u, 'websockets_full', 0)
        return false
      },
      socketOpened: (u) => { u.websockets++; totals.load++; admission.socketsChanged(u) },
      socketClosed: (u) => { u.websockets--; totals.load--; admission.socketsChanged(u); drains.check(u) },
      retry: () => admission.retry(),
      retryEnded: () => admission.retryEnded(),
      retryAfter: () => config.retryAfter,
      overloadRetryAfter: config.overload.retryAfter,
    }
  }
}
