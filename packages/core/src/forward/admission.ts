import type { OutcomeKind, RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import type { Waiter } from '../model/wait-queue.js'

/** `queue`: requests wait at most `max` per upstream, for at most `timeoutMs`. */
export interface QueueConfig { max: number, timeoutMs: number }

/** `retryBudget`: failover retries under way ≤ max(min, percent % of requests in flight and queued). */
export interface RetryBudgetConfig { percent: number, min: number }

/** Why a request was not admitted: a full queue (or none), a wait past timeoutMs, or the balancer closing. */
export type Refusal = 'queue_full' | 'queue_timeout' | 'closed'

/** How a wait in a queue ended, for the queue-wait histogram. */
export type WaitResult = 'admitted' | 'timeout' | 'aborted' | 'moved'

/** What waits in a queue: an exchange (exchange.ts). */
export interface QueueWaiter extends Waiter {
  /** A slot is free: begin the attempt now. */
  admitted (): void
  /** Not admitted: answer 503. Called synchronously from `admit` for a full queue. */
  refused (why: Refusal): void
  /** Its upstream went down or away while it waited: pick again, as for a new request. */
  moved (): void
}

/** What admission reports to the balancer: queue outcomes (stats, onOutcome) and waits (the histogram). */
export interface AdmissionReport {
  outcome (u: Upstream, kind: OutcomeKind, startedAt: number): void
  waited (u: Upstream, ms: number, result: WaitResult): void
}

/**
 * Capacity limits, queues and the retry budget: what happens between a pick and
 * the dispatch of an attempt (HAProxy `maxconn` + `maxqueue` + `timeout queue`;
 * Envoy's circuit breakers and `retry_budget`).
 *
 * - An attempt at an upstream with fewer than `maxInFlight` requests in flight and
 *   nobody waiting starts at once; otherwise it joins the upstream's FIFO (at most
 *   `queue.max`), and is refused (`queue_full`) when that is full or there is no
 *   queue. A slot freed by a settled attempt goes to the head of the queue on the
 *   next tick, so a newcomer never overtakes a waiter (FIFO) and the upstream never
 *   has more than `maxInFlight` in flight. A waiter past `queue.timeoutMs` is
 *   refused (`queue_timeout`); one whose client leaves is dropped at once. Neither
 *   is charged to the upstream (forward/context.ts, blame).
 * - Who waits where is the pick's business, not this module's: sticky and hashed
 *   users are picked their own upstream and wait for it; stateless picks are handed
 *   `aside()` (the upstreams where a request would wait) and go elsewhere first.
 * - WebSockets: an upgrade's handshake is a request (it waits like one); the open
 *   tunnel counts against `maxWebSockets`, not `maxInFlight` (see README, Overload).
 * - Retry budget (Envoy's retry_budget, default 20 % and 3): a failover retry is made
 *   only while fewer than max(min, percent % of attempts in flight and queued)
 *   retries are under way across the balancer.
 */
export class Admission {
  /** Upstreams where a new request would wait now (`Upstream.full`): a live set, never copied per pick. */
  readonly full = new Set<Upstream>()
  /** Upstreams with no room for another WebSocket. */
  readonly socketsFull = new Set<Upstream>()
  readonly queueConfig: QueueConfig | undefined
  readonly budget: RetryBudgetConfig | undefined
  /** Attempts in flight and requests queued, over all upstreams: the base of the retry budget. */
  active = 0
  pending = 0
  retriesActive = 0
  retriesMade = 0
  retriesRefused = 0
  readonly #report: AdmissionReport

  constructor (queue: QueueConfig | undefined, budget: RetryBudgetConfig | undefined, report: AdmissionReport) {
    this.queueConfig = queue
    this.budget = budget
    this.#report = report
  }

  /**
   * What a pick for `req` should set aside: undefined (nothing) in the common case,
   * decided on two set sizes before the request is looked at, so picks pay nothing.
   */
  aside (req: RouteRequest): ReadonlySet<Upstream> | undefined {
    if (this.full.size === 0 && this.socketsFull.size === 0) return undefined
    const set = req.headers.upgrade !== undefined ? this.socketsFull : this.full
    return set.size === 0 ? undefined : set
  }

  /**
   * true: the attempt may start now (the caller begins it). false: it waits in `u`'s
   * queue (`w.admitted()` later), or was refused (`w.refused()` has run).
   */
  admit (u: Upstream, w: QueueWaiter): boolean {
    const q = u.queue
    if (q.length === 0 && u.inFlight < u.maxInFlight) return true
    const config = this.queueConfig
    if (config === undefined || q.length >= config.max) {
      this.#report.outcome(u, 'queue_full', 0)
      w.refused('queue_full')
      return false
    }
    w.queuedAt = performance.now()
    q.push(w)
    this.pending++
    this.#refresh(u)
    if (q.timer === undefined) this.#arm(u)
    return false
  }

  /** An attempt began at `u` (its inFlight already counted). */
  began (u: Upstream, upgrade: boolean): void {
    this.active++
    if (upgrade) {
      u.upgrading++
      this.#sockets(u)
    }
    if (u.maxInFlight !== Infinity) this.#refresh(u)
  }

  /** An attempt at `u` ended (its inFlight already uncounted): the freed slot goes to the queue's head. */
  ended (u: Upstream, upgrade: boolean): void {
    this.active--
    if (upgrade) {
      u.upgrading--
      this.#sockets(u)
    }
    const q = u.queue
    if (q.length > 0 && !q.pumping) {
      // Next tick: the slot is handed over outside the undici callback that freed it.
      q.pumping = true
      process.nextTick(this.#pump, u)
    }
    if (u.maxInFlight !== Infinity) this.#refresh(u)
  }

  /** `w`'s client left while it waited at `u`: out of the queue now, counted as aborted. */
  leave (u: Upstream, w: QueueWaiter): void {
    if (w.queue !== u.queue) return
    u.queue.remove(w)
    this.pending--
    this.#report.outcome(u, 'aborted', w.queuedAt)
    this.#report.waited(u, performance.now() - w.queuedAt, 'aborted')
    this.#idle(u)
    this.#refresh(u)
  }

  /** Whether `u` has room for another WebSocket (open ones and handshakes under way). */
  socketRoom (u: Upstream): boolean {
    return u.websockets + u.upgrading < u.maxWebSockets
  }

  /** A tunnel opened or closed at `u` (its websockets count already changed). */
  socketsChanged (u: Upstream): void {
    this.#sockets(u)
  }

  /** Whether a failover retry may be made now; counted either way. A granted one ends with `retryEnded`. */
  retry (): boolean {
    const b = this.budget
    if (b !== undefined && this.retriesActive >= Math.max(b.min, Math.floor(b.percent * (this.active + this.pending) / 100))) {
      this.retriesRefused++
      return false
    }
    this.retriesActive++
    this.retriesMade++
    return true
  }

  retryEnded (): void {
    this.retriesActive--
  }

  /**
   * `u` went down or was removed: its waiters pick again, as new requests would
   * (HAProxy redistributes a down server's queue: pendconn_redistribute). A sticky
   * user's pick then fails over; nobody waits for a server that will not answer.
   */
  moveAway (u: Upstream): void {
    const q = u.queue
    this.#idle(u, true)
    for (let w = q.shift() as QueueWaiter | undefined; w !== undefined; w = q.shift() as QueueWaiter | undefined) {
      this.pending--
      this.#waitedFor(u, w, 'moved')
      w.moved()
    }
    this.#refresh(u)
  }

  /** `u` left the balancer. */
  forget (u: Upstream): void {
    this.moveAway(u)
    this.full.delete(u)
    this.socketsFull.delete(u)
  }

  /** The balancer closes: every waiter is answered 503. */
  close (upstreams: Iterable<Upstream>): void {
    for (const u of upstreams) {
      this.#idle(u, true)
      const q = u.queue
      for (let w = q.shift() as QueueWaiter | undefined; w !== undefined; w = q.shift() as QueueWaiter | undefined) {
        this.pending--
        w.refused('closed')
      }
    }
  }

  /** Hands free slots to the waiters at the head of `u`'s queue (a nextTick callback). */
  readonly #pump = (u: Upstream): void => {
    const q = u.queue
    q.pumping = false
    while (q.length > 0 && u.inFlight < u.maxInFlight) {
      const w = q.shift() as QueueWaiter
      this.pending--
      this.#waitedFor(u, w, 'admitted')
      // Begins the attempt (inFlight + 1), or ends the exchange if that can no longer be.
      w.admitted()
    }
    this.#idle(u)
    this.#refresh(u)
  }

  /** Refuses the waiters past their deadline, oldest first, then waits for the new head's. */
  readonly #expire = (u: Upstream): void => {
    const q = u.queue
    q.timer = undefined
    const timeoutMs = this.queueConfig!.timeoutMs
    const now = performance.now()
    // A timer may fire a fraction of a millisecond before the deadline it was set
    // for (setTimeout rounds to whole milliseconds).
    while (q.head !== undefined && now - q.head.queuedAt >= timeoutMs - 1) {
      const w = q.shift() as QueueWaiter
      this.pending--
      this.#report.outcome(u, 'queue_timeout', w.queuedAt)
      this.#report.waited(u, now - w.queuedAt, 'timeout')
      w.refused('queue_timeout')
    }
    this.#refresh(u)
    if (q.head !== undefined) this.#arm(u)
  }

  #waitedFor (u: Upstream, w: QueueWaiter, result: WaitResult): void {
    const ms = performance.now() - w.queuedAt
    u.queueWaits++
    u.queueWaitMs += ms
    this.#report.waited(u, ms, result)
  }

  /** One timer per queue, for its head: every waiter has the same timeout, so they expire in order. */
  #arm (u: Upstream): void {
    const q = u.queue
    const head = q.head
    if (head === undefined) return
    const delay = Math.max(0, head.queuedAt + this.queueConfig!.timeoutMs - performance.now())
    q.timer = setTimeout(this.#expire, delay, u)
    // Waiters are answered by their own requests' lifetimes; the timer holds nothing open.
    q.timer.unref()
  }

  /** Stops the head's timer once the queue is empty (or always, with `force`). */
  #idle (u: Upstream, force = false): void {
    const q = u.queue
    if (q.timer !== undefined && (force || q.length === 0)) {
      clearTimeout(q.timer)
      q.timer = undefined
    }
  }

  #refresh (u: Upstream): void {
    // A removed upstream is in no pick's list: it must not keep the set non-empty.
    const full = !u.removed && (u.inFlight >= u.maxInFlight || u.queue.length > 0)
    if (full === u.full) return
    u.full = full
    if (full) this.full.add(u)
    else this.full.delete(u)
  }

  #sockets (u: Upstream): void {
    if (u.maxWebSockets === Infinity) return
    const full = !u.removed && u.websockets + u.upgrading >= u.maxWebSockets
    if (full === u.socketsFull) return
    u.socketsFull = full
    if (full) this.socketsFull.add(u)
    else this.socketsFull.delete(u)
  }
}
