import type { Dispatcher } from 'undici'
import { isPromise, type Choice } from '../model/choice.js'
import type { OutcomeKind } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
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
    this.ex.ctx.settle(this.u, outcome, kind, this.startedAt)
  }
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
 */
export abstract class Exchange {
  readonly ctx: ForwardContext
  readonly choice: Choice
  attempts = 0
  clientGone = false
  current: Attempt | undefined
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
  /** Answers the client with the balancer's own error; `cause`: what failed, if anything did. */
  protected abstract answer (answer: ErrorAnswer, cause?: unknown): void
  /** Whether an attempt that reached its upstream may be replayed on another. */
  protected abstract replayable (attempt: Attempt): boolean

  attempt (u: Upstream): void {
    this.attempts++
    this.choice.upstream = u
    this.ctx.begin(u)
    this.current = this.dispatch(u)
  }

  /** The client went away: abort what is in flight (its outcome is `aborted`). */
  clientLeft (): void {
    this.clientGone = true
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
    if (!b.retry || (attempt.reached && !this.replayable(attempt)) || this.attempts > this.ctx.retries) {
      this.answer(b.answer, (err as { code?: unknown }).code === HOOK_FAILED ? err.cause : err)
      return
    }
    ;(this.choice.tried ??= []).push(attempt.u)
    const next = this.ctx.repick(this.choice)
    if (isPromise(next)) next.then(n => this.#retry(n), () => this.#retry(undefined))
    else this.#retry(next)
  }

  #retry (next: Upstream | undefined): void {
    if (this.clientGone) return
    if (next === undefined) this.answer('unreachable', this.lastError)
    else this.attempt(next)
  }
}
