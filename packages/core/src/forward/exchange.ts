import type { Dispatcher } from 'undici'
import { isPromise, type Choice } from '../model/choice.js'
import type { OutcomeKind } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import type { WaitQueue } from '../model/wait-queue.js'
import type { QueueWaiter, Refusal } from './admission.js'
import { blame, ClientGoneError, HOOK_FAILED, type ForwardContext, type Outcome } from './context.js'
import type { ErrorAnswer } from './error-response.js'

/**
 * One attempt at one upstream: the undici dispatch handler's common part. It knows
 * whether the request reached the upstream (undici calls onRequestStart on a
 * connected socket, right before writing), settles its outcome exactly once, and
 * can be aborted when the client leaves. HTTP and the WebSocket upgrade subclass it
 * with what they do with the answer (http.ts, upgrade.ts).
 */
export class Attempt {
  readonly ex: Exchange
  readonly u: Upstream
  /** performance.now() at dispatch, when someone times attempts (0 otherwise). */
  readonly startedAt: number
  reached = false
  #settled = false
  controller: Dispatcher.DispatchController | undefined

  constructor (ex: Exchange, u: Upstream) {
    this.ex = ex
    this.u = u
    this.startedAt = ex.ctx.timing ? performance.now() : 0
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.reached = true
    this.controller = controller
    if (this.ex.clientGone) this.abort()
  }

  onResponseError (_controller: Dispatcher.DispatchController, err: Error): void {
    this.ex.failed(this, err)
  }

  abort (): void {
    this.controller?.abort(new ClientGoneError('client closed the connection'))
  }

  /** Ends the attempt's books: load, outcome, passive health. Later calls do nothing. */
  settle (outcome: Outcome, kind: OutcomeKind): void {
    if (this.#settled) return
    this.#settled = true
    if (this.ex.current === this) this.ex.current = undefined
    this.ex.ctx.settle(this.u, outcome, kind, this.startedAt, this.ex.upgrade)
    // A failover retry holds a slot of the retry budget until its attempt ends.
    this.ex.endRetry()
  }
}

/** What an error answer carries besides its status (Exchange.answer). */
export interface AnswerDetail {
  cause?: unknown
  retryAfter?: number
  setCookie?: string
}

/**
 * One client request across its attempts, and the one failover rule (nginx's
 * proxy_next_upstream): after a failed attempt the blame rule (context.ts) says who
 * is charged; nothing is retried once the client has been sent anything, a request
 * that never reached an upstream is retried elsewhere for any method, one that
 * reached it only when `replayable` says so, and at most `retries` times. What an
 * attempt dispatches and how the client is answered is the subclass's: HTTP
 * (http.ts) or a WebSocket upgrade (upgrade.ts), as undici's pool-base leaves only
 * the dispatcher choice to its subclasses.
 *
 * Between the pick and the dispatch stands admission (admission.ts): an attempt at
 * an upstream at `maxInFlight` waits in its queue (this exchange is the waiter),
 * and a failover retry must fit the retry budget.
 */
export abstract class Exchange implements QueueWaiter {
  readonly ctx: ForwardContext
  readonly choice: Choice
  attempts = 0
  clientGone = false
  current: Attempt | undefined
  // Its place in a queue (QueueWaiter), while it waits.
  prev: QueueWaiter | undefined = undefined
  next: QueueWaiter | undefined = undefined
  queue: WaitQueue | undefined = undefined
  queuedAt = 0
  /** Holds a slot of the retry budget (a failover retry under way). */
  #retrying = false
  /** The last attempt's failure, for the answer when no other upstream is left. */
  lastError: Error | undefined

  constructor (ctx: ForwardContext, choice: Choice) {
    this.ctx = ctx
    this.choice = choice
  }

  /** Dispatches an attempt at `u`, returning its handler. */
  protected abstract dispatch (u: Upstream): Attempt
  /** Something of an answer went to the client: no retry, no error answer. */
  protected abstract responded (): boolean
  /** Closes the client's connection mid-answer, so it sees an incomplete response. */
  protected abstract cut (): void
  /**
   * Answers the client with the balancer's own error: `cause` is what failed, if
   * anything did; a 503 carries Retry-After, and the balancer's cookie when the
   * refusal is for capacity (see #refuse).
   */
  protected abstract answer (answer: ErrorAnswer, detail?: AnswerDetail): void
  /** Whether an attempt that reached its upstream may be replayed on another. */
  protected abstract replayable (attempt: Attempt): boolean

  /** A WebSocket handshake (upgrade.ts): limited by maxWebSockets besides maxInFlight. */
  get upgrade (): boolean {
    return false
  }

  /** An attempt at `u`: now, once admitted from its queue, or not at all (a 503). */
  attempt (u: Upstream): void {
    this.attempts++
    this.choice.upstream = u
    if (this.upgrade && !this.ctx.admitSocket(u)) {
      this.#refuse('websocketsFull')
      return
    }
    if (this.ctx.admit(u, this)) this.#begin(u)
  }

  #begin (u: Upstream): void {
    this.ctx.begin(u, this.upgrade)
    this.current = this.dispatch(u)
  }

  /** QueueWaiter: a slot at its upstream is free. */
  admitted (): void {
    const u = this.choice.upstream!
    if (this.clientGone || this.closed()) {
      this.endRetry()
      return
    }
    // Tunnels opened elsewhere while it waited may have used up the room.
    if (this.upgrade && !this.ctx.admitSocket(u)) {
      this.#refuse('websocketsFull')
      return
    }
    this.#begin(u)
  }

  /** QueueWaiter: no slot (queue full, waited too long, balancer closing): a 503. */
  refused (why: Refusal): void {
    this.#refuse(why === 'queue_full' ? 'queueFull' : why === 'queue_timeout' ? 'queueTimeout' : 'unavailable')
  }

  /** QueueWaiter: its upstream went down or away while it waited: placed again, not a retry (nothing failed it). */
  moved (): void {
    this.attempts--
    const next = this.ctx.repick(this.choice)
    if (isPromise(next)) next.then(n => this.#replace(n), () => this.#replace(undefined))
    else this.#replace(next)
  }

  #replace (next: Upstream | undefined): void {
    if (this.clientGone) this.endRetry()
    else if (next === undefined) this.#refuse('unavailable')
    else this.attempt(next)
  }

  #refuse (answer: ErrorAnswer): void {
    this.endRetry()
    if (this.clientGone || this.closed()) return
    if (answer === 'unavailable') {
      this.answer(answer, { retryAfter: this.ctx.retryAfter() })
      return
    }
    // Refused for capacity, not for a failure: a new user placed by this request is
    // bound (and counted as bound by the session cap), so the answer carries the
    // cookie, or the next request would place them again and count them twice.
    this.answer(answer, { retryAfter: this.ctx.overloadRetryAfter, setCookie: this.choice.setCookie })
  }

  /** Gives back the retry budget's slot, if this exchange holds one. */
  endRetry (): void {
    if (!this.#retrying) return
    this.#retrying = false
    this.ctx.retryEnded()
  }

  /** The client went away: abort what is in flight (its outcome is `aborted`), or leave the queue. */
  clientLeft (): void {
    this.clientGone = true
    if (this.queue !== undefined) {
      this.ctx.leave(this.choice.upstream!, this)
      this.endRetry()
    }
    this.current?.abort()
  }

  /** The client's side is closed though no 'close' was seen yet. */
  protected closed (): boolean {
    return false
  }

  failed (attempt: Attempt, err: Error): void {
    if (this.clientGone || this.closed()) {
      attempt.settle('neutral', 'aborted')
      return
    }
    const b = blame(err, attempt.reached)
    attempt.settle(b.outcome, b.kind)
    this.lastError = err
    if (this.responded()) {
      this.cut()
      return
    }
    const cause = (err as { code?: unknown }).code === HOOK_FAILED ? err.cause : err
    if (!b.retry || (attempt.reached && !this.replayable(attempt)) || this.attempts > this.ctx.retries) {
      this.answer(b.answer, { cause })
      return
    }
    // No retry storm (Envoy's retry_budget): beyond the budget, the client gets the error.
    if (!this.ctx.retry()) {
      this.answer(b.answer, { cause })
      return
    }
    this.#retrying = true
    ;(this.choice.tried ??= []).push(attempt.u)
    const next = this.ctx.repick(this.choice)
    if (isPromise(next)) next.then(n => this.#retry(n), () => this.#retry(undefined))
    else this.#retry(next)
  }

  #retry (next: Upstream | undefined): void {
    if (this.clientGone) {
      this.endRetry()
      return
    }
    if (next === undefined) {
      this.endRetry()
      this.answer('unreachable', { cause: this.lastError })
    } else {
      this.attempt(next)
    }
  }
}
