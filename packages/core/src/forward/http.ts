import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { isPromise, type Choice } from '../strategies/strategy.js'
import type { Upstream } from '../upstream.js'
import { BodyRelay } from './body-relay.js'
import { failureKind, IDEMPOTENT, isTimeout, statusKind, type ForwardContext, type Outcome } from './context.js'
import { sendError } from './error-response.js'
import { responseHeaderList, upstreamRequestHeaders } from './headers.js'

export interface ForwardOptions {
  /** Path and query to request from the upstream, below the mount point. */
  path: string
  /**
   * The request body. Default: the request stream itself when it has a body.
   * A Buffer or string (a body a framework already parsed) is sent as is.
   */
  body?: Readable | Buffer | string | null
  /**
   * Headers the app already decided on (e.g. set by framework hooks before the proxy
   * ran: CORS, security headers). They are sent with the upstream's response and
   * with the balancer's own errors; they replace an upstream header of the same
   * name, except Set-Cookie, which is added to.
   */
  responseHeaders?: Record<string, string | string[] | number | undefined>
}

/**
 * Forwards one HTTP request through undici's dispatch API (the fastest of undici's
 * APIs, and what undici's own proxy example uses), streaming both bodies with
 * backpressure. Failover follows nginx's proxy_next_upstream: a request that never
 * reached an upstream is retried on another one for any method; one that reached
 * it is replayed only if idempotent and its body was not consumed; nothing is
 * retried once a response has started.
 */
export function forwardHttp (ctx: ForwardContext, choice: Choice, req: IncomingMessage, res: ServerResponse, opts: ForwardOptions): void {
  const te = req.headers['transfer-encoding']
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
    // Node decodes only chunked; any other transfer coding (gzip, chunked…) would
    // reach the upstream as an undecoded body under no Content-Encoding. RFC 9112 §6.1
    // suggests 501 for a coding the server does not understand; a client error (400)
    // is answered instead, so no hostile request makes the balancer answer a 5xx.
    sendError(res, 400, undefined, opts.responseHeaders)
    return
  }
  if (choice.upstream === undefined) {
    sendError(res, 503, ctx.retryAfter(), opts.responseHeaders)
    return
  }
  new Exchange(ctx, choice, req, res, opts).attempt(choice.upstream)
}

function hasBody (headers: IncomingHttpHeaders): boolean {
  const cl = headers['content-length']
  return headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')
}

/** One client request across its attempts. */
class Exchange {
  readonly ctx: ForwardContext
  readonly choice: Choice
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly path: string
  readonly method: string
  readonly headers: string[]
  readonly source: Readable | Buffer | string | null
  readonly extra: ForwardOptions['responseHeaders']
  relay: BodyRelay | undefined
  attempts = 0
  clientGone = false
  current: Attempt | undefined

  constructor (ctx: ForwardContext, choice: Choice, req: IncomingMessage, res: ServerResponse, opts: ForwardOptions) {
    this.ctx = ctx
    this.choice = choice
    this.req = req
    this.res = res
    this.path = opts.path
    this.method = req.method ?? 'GET'
    this.extra = opts.responseHeaders
    this.headers = upstreamRequestHeaders(req, choice.request)
    if (opts.body === undefined) this.source = hasBody(req.headers) ? req : null
    else this.source = opts.body
    if (typeof this.source === 'string' || Buffer.isBuffer(this.source)) fixLength(this.headers, Buffer.byteLength(this.source))
    res.once('close', this.onClose)
  }

  attempt (u: Upstream): void {
    this.attempts++
    this.choice.upstream = u
    this.ctx.begin(u)
    let body: Readable | Buffer | string | null = this.source
    if (body !== null && typeof body === 'object' && !Buffer.isBuffer(body)) {
      this.relay = new BodyRelay(body)
      body = this.relay
    }
    const attempt = new Attempt(this, u)
    this.current = attempt
    u.pool.dispatch({
      path: u.basePath + this.path,
      method: this.method as Dispatcher.HttpMethod,
      headers: this.headers,
      body,
      headersTimeout: this.ctx.timeoutMs,
      bodyTimeout: this.ctx.timeoutMs,
    }, attempt)
  }

  failed (attempt: Attempt, err: Error): void {
    const u = attempt.u
    const reached = attempt.reached
    this.current = undefined
    if (this.clientGone) {
      this.ctx.settle(u, 'neutral', 'aborted', attempt.startedAt)
      return
    }
    this.ctx.settle(u, 'failure', failureKind(err, reached), attempt.startedAt)
    if (this.res.headersSent) {
      this.res.destroy()
      return
    }
    const timeout = isTimeout(err)
    const replayable = !reached || (IDEMPOTENT.has(this.method) && this.relay?.started !== true)
    if (timeout || !replayable || this.attempts > this.ctx.retries) {
      sendError(this.res, timeout ? 504 : 502, undefined, this.extra)
      return
    }
    ;(this.choice.tried ??= []).push(u)
    const next = this.ctx.repick(this.choice)
    if (isPromise(next)) next.then(n => this.retry(n), () => this.retry(undefined))
    else this.retry(next)
  }

  retry (next: Upstream | undefined): void {
    if (this.clientGone) return
    if (next === undefined) sendError(this.res, 502, undefined, this.extra)
    else this.attempt(next)
  }

  onClose = (): void => {
    if (this.res.writableFinished) return
    this.clientGone = true
    this.current?.abort()
  }
}

/** undici handler (v2 API: onRequestStart … onResponseError) for one attempt. */
class Attempt implements Dispatcher.DispatchHandler {
  readonly ex: Exchange
  readonly u: Upstream
  readonly startedAt: number
  reached = false
  outcome: Outcome = 'ok'
  statusCode = 0
  controller: Dispatcher.DispatchController | undefined

  constructor (ex: Exchange, u: Upstream) {
    this.ex = ex
    this.u = u
    this.startedAt = ex.ctx.timing ? performance.now() : 0
  }

  abort (): void {
    this.controller?.abort(new Error('client closed the connection'))
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    // undici calls this on a connected socket, right before writing the request:
    // from here on the upstream may have seen it.
    this.reached = true
    this.controller = controller
    if (this.ex.clientGone) this.abort()
  }

  onResponseStart (controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return // 1xx informational: consumed here (RFC 9110 §15.2)
    this.controller = controller
    this.statusCode = statusCode
    if (statusCode >= 500) this.outcome = 'failure'
    const res = this.ex.res
    try {
      res.writeHead(statusCode, responseHeaderList(headers, this.ex.extra, this.ex.choice.setCookie))
    } catch (err) {
      controller.abort(err as Error)
    }
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.ex.res.write(chunk)) {
      controller.pause()
      this.ex.res.once('drain', this.resume)
    }
  }

  onResponseEnd (): void {
    this.ex.current = undefined
    this.ex.res.end()
    this.ex.ctx.settle(this.u, this.outcome, statusKind(this.statusCode), this.startedAt)
  }

  onResponseError (_controller: Dispatcher.DispatchController, err: Error): void {
    this.ex.failed(this, err)
  }

  resume = (): void => {
    this.controller?.resume()
  }
}

/** A replaced body gets a matching Content-Length and no Transfer-Encoding. */
function fixLength (headers: string[], length: number): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i] === 'content-length' || headers[i] === 'transfer-encoding') headers.splice(i, 2)
  }
  headers.push('content-length', String(length))
}
