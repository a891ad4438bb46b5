import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { Choice } from '../model/choice.js'
import type { Upstream } from '../model/upstream.js'
import { BodyRelay } from './body-relay.js'
import { ClientGoneError, HOOK_FAILED, IDEMPOTENT, statusKind, UNRELAYABLE, type ForwardContext, type Outcome } from './context.js'
import { cutResponse, isClosed, type ClientResponse, type ErrorAnswer } from './error-response.js'
import { Attempt, Exchange, type AnswerDetail } from './exchange.js'
import { responseFields, responseHeaderList, upstreamRequestHeaders } from './headers.js'
import { rewriteLocations } from './location.js'
import { answerError, type AnswerTarget, type ForwardPolicy } from './policy.js'
import { queuedBehind, watchQueued } from './pipeline.js'
import { requestTarget } from './target.js'

/** A client request as the adapters hand it over: HTTP/1.x, or HTTP/2 through node:http2's compatibility API. */
export type ClientRequest = IncomingMessage | Http2ServerRequest

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
  /** The mount's policy (Mount.policy, built once at registration): hooks, Host, Location rewrite. */
  policy?: ForwardPolicy
  /** The framework's request, as the policy's hooks get it (default: the raw request). */
  request?: unknown
  /** The framework's reply, as `onError` and the policy's claim get it (default: the raw response). */
  reply?: unknown
}

/**
 * Forwards one HTTP request through undici's dispatch API (the fastest of undici's
 * APIs, and what undici's own proxy example uses), streaming both bodies with
 * backpressure. Failover follows nginx's proxy_next_upstream: a request that never
 * reached an upstream is retried on another one for any method; one that reached
 * it is replayed only if idempotent and its body was not consumed; nothing is
 * retried once a response has started. Who is blamed for a failure: `blame`.
 */
export function forwardHttp (ctx: ForwardContext, choice: Choice, req: ClientRequest, res: ClientResponse, opts: ForwardOptions): void {
  const te = req.headers['transfer-encoding']
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
    // Node decodes only chunked; any other transfer coding (gzip, chunked…) would
    // reach the upstream as an undecoded body under no Content-Encoding. RFC 9112 §6.1
    // suggests 501 for a coding the server does not understand; a client error (400)
    // is answered instead, so no hostile request makes the balancer answer a 5xx.
    answerError(target(req, res, opts), 'badRequest')
    return
  }
  if (choice.upstream === undefined) {
    answerError(target(req, res, opts), 'unavailable', ctx.retryAfter())
    return
  }
  // The client left while the decision was made (an asynchronous stick store, the
  // app's hooks): its 'close' has passed, so nothing would ever abort the attempt.
  if (isClosed(res) || queuedBehind(req, res)?.destroyed === true) return
  let headers: string[]
  try {
    headers = upstreamRequestHeaders(req, choice.request, opts.policy, opts.request)
  } catch (err) {
    // The app's rewriteRequestHeaders threw: its own 500, nobody charged.
    answerError(target(req, res, opts), 'misconfigured', undefined, err)
    return
  }
  new HttpExchange(ctx, choice, req, res, opts, headers).attempt(choice.upstream)
}

/** Where an answer for a request that never became an exchange goes. */
function target (req: ClientRequest, res: ClientResponse, opts: ForwardOptions): AnswerTarget {
  return { res, policy: opts.policy, view: opts.request ?? req, reply: opts.reply ?? res, extra: opts.responseHeaders }
}

function hasBody (req: ClientRequest): boolean {
  // HTTP/2 frames the body itself: a request without one ends with its HEADERS frame.
  // (An HTTP/1 request line may claim "HTTP/2.0": only node:http2 requests have a stream.)
  const stream = (req as Partial<Http2ServerRequest>).stream
  if (stream !== undefined) return stream.endAfterHeaders !== true
  const headers = req.headers
  const cl = headers['content-length']
  return headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')
}

/** One client HTTP request across its attempts (the failover rule: exchange.ts). */
class HttpExchange extends Exchange implements AnswerTarget {
  readonly req: ClientRequest
  /**
   * Typed as node:http's response: node:http2's compatibility response has every
   * method used here (writeHead, write, flushHeaders, addTrailers, end, destroy).
   */
  readonly res: ServerResponse
  readonly path: string
  readonly method: string
  readonly headers: string[]
  readonly source: Readable | Buffer | string | null
  readonly extra: ForwardOptions['responseHeaders']
  readonly policy: ForwardPolicy | undefined
  /** The framework's request and reply, for the policy's hooks. */
  readonly view: unknown
  readonly reply: unknown
  relay: BodyRelay | undefined

  constructor (ctx: ForwardContext, choice: Choice, req: ClientRequest, res: ClientResponse, opts: ForwardOptions, headers: string[]) {
    super(ctx, choice)
    this.req = req
    this.res = res as ServerResponse
    this.path = requestTarget(opts.path)
    this.method = req.method ?? 'GET'
    this.extra = opts.responseHeaders
    this.policy = opts.policy
    this.view = opts.request ?? req
    this.reply = opts.reply ?? res
    this.headers = headers
    if (opts.body === undefined) this.source = hasBody(req) ? req : null
    else this.source = opts.body
    if (typeof this.source === 'string' || Buffer.isBuffer(this.source)) fixLength(this.headers, Buffer.byteLength(this.source))
    res.once('close', this.onClose)
    // An h2 client's RST_STREAM(NO_ERROR) while the response is being written ends
    // node:http2's stream half-way: no 'close' follows while writes are queued that can
    // never drain (lib/internal/http2/core.js, onStreamClose). 'aborted' is all that
    // tells; destroying the response then closes it, as Node does for other codes.
    if ((req as Partial<Http2ServerRequest>).stream !== undefined) req.once('aborted', () => { res.destroy() })
    const conn = queuedBehind(req, res)
    if (conn !== undefined) watchQueued(conn, this)
  }

  protected dispatch (u: Upstream): Attempt {
    let body: Readable | Buffer | string | null = this.source
    if (body !== null && typeof body === 'object' && !Buffer.isBuffer(body)) {
      this.relay = new BodyRelay(body)
      body = this.relay
    }
    const attempt = new HttpAttempt(this, u)
    u.pool.dispatch({
      path: u.basePath + this.path,
      method: this.method as Dispatcher.HttpMethod,
      headers: this.headers,
      body,
      headersTimeout: this.ctx.timeoutMs,
      bodyTimeout: this.ctx.idleTimeoutMs,
    }, attempt)
    return attempt
  }

  protected responded (): boolean {
    return this.res.headersSent
  }

  protected cut (): void {
    cutResponse(this.res)
  }

  protected answer (answer: ErrorAnswer, detail: AnswerDetail = {}): void {
    // A refusal for capacity carries the balancer's cookie (Exchange #refuse): on top of the app's headers.
    const to: AnswerTarget = detail.setCookie === undefined
      ? this
      : { res: this.res, policy: this.policy, view: this.view, reply: this.reply, extra: withCookie(this.extra, detail.setCookie) }
    answerError(to, answer, detail.retryAfter, detail.cause)
  }

  /** RFC 9110 §9.2.2: idempotent, and its body not read yet (it cannot be read twice). */
  protected replayable (): boolean {
    return IDEMPOTENT.has(this.method) && this.relay?.started !== true
  }

  protected override closed (): boolean {
    return isClosed(this.res)
  }

  // A response also closes when it is complete, but its attempt is over by then
  // (`current` cleared), so this only ever stops an attempt still running. (It used to
  // return on `res.writableFinished`, which an HTTP/2 response reports true once the
  // client has reset its stream: the attempt then ran on for a client that was gone.)
  onClose = (): void => {
    this.clientLeft()
  }
}

/** The undici handler (v2 API) of one HTTP attempt: relays the answer into the client's response. */
class HttpAttempt extends Attempt implements Dispatcher.DispatchHandler {
  declare readonly ex: HttpExchange
  outcome: Outcome = 'ok'
  statusCode = 0
  /** Response body bytes relayed so far: none yet means the head still waits in Node's buffer. */
  wrote = false

  onResponseStart (controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return // 1xx informational: consumed here (RFC 9110 §15.2)
    this.controller = controller
    this.statusCode = statusCode
    if (statusCode >= 500) this.outcome = 'failure'
    const ex = this.ex
    const policy = ex.policy
    if (policy !== undefined) {
      if (policy.rewriteLocation && (headers.location !== undefined || headers['content-location'] !== undefined)) rewriteLocations(headers, this.u, policy, ex.view)
      if (policy.rewriteHeaders !== undefined) {
        try {
          headers = responseFields(policy.rewriteHeaders(headers, ex.view))
        } catch (err) {
          controller.abort(Object.assign(new Error('rewriteHeaders failed', { cause: err }), { code: HOOK_FAILED }))
          return
        }
      }
      // Answered by someone else meanwhile (Fastify's handlerTimeout, before the reply was claimed).
      if (ex.res.headersSent) {
        controller.abort(new ClientGoneError('the response was answered elsewhere'))
        return
      }
      policy.claim?.(ex.reply)
    }
    try {
      ex.res.writeHead(statusCode, responseHeaderList(headers, ex.extra, ex.choice.setCookie, keepsTrailer(ex.req, ex.method, statusCode, headers)))
    } catch (err) {
      controller.abort(Object.assign(new Error('response head cannot be relayed', { cause: err }), { code: UNRELAYABLE }))
      return
    }
    // Node sends the head with the first body chunk. A body in the same read as the
    // head is relayed synchronously by undici's parser; otherwise (SSE, long-poll, a
    // slow first byte) the head goes out on its own now, not when the body starts.
    process.nextTick(flushHead, this)
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.wrote = true
    if (!this.ex.res.write(chunk)) {
      // A closed response never drains: pausing would hold the attempt in flight for good.
      if (isClosed(this.ex.res)) {
        controller.abort(new ClientGoneError('the client response closed'))
        return
      }
      controller.pause()
      this.ex.res.once('drain', this.resume)
    }
  }

  onResponseEnd (controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    const res = this.ex.res
    this.wrote = true
    if (trailers !== undefined && hasAny(trailers)) addTrailers(res, trailers)
    else if (isFieldObject(controller.rawTrailers)) addTrailers(res, controller.rawTrailers)
    res.end()
    this.settle(this.outcome, statusKind(this.statusCode))
  }

  // 'drain' may come from inside another upstream's parser callback: Node emits it on
  // the response being sent when a pipelined response behind it buffers a write
  // (_http_server.js updateOutgoingData → socketOnDrain). undici refuses to resume a
  // parser from within another one's (Parser.resume: assert(currentParser === null));
  // the request would fail and be charged to its upstream as a reset. Resumed once
  // the current callback has returned.
  resume = (): void => {
    process.nextTick(resumeAttempt, this)
  }
}

function resumeAttempt (attempt: HttpAttempt): void {
  attempt.controller?.resume()
}

function flushHead (attempt: HttpAttempt): void {
  const res = attempt.ex.res
  if (!attempt.wrote && !res.writableEnded && !isClosed(res)) res.flushHeaders()
}

/**
 * Whether the upstream's `Trailer` header may go on: trailers reach an HTTP/2
 * client, or an HTTP/1.1 one over chunked coding (no Content-Length, a body
 * allowed). Node refuses a Trailer header on any other response (ERR_HTTP_TRAILER_INVALID).
 */
function keepsTrailer (req: ClientRequest, method: string, status: number, headers: IncomingHttpHeaders): boolean {
  if (headers.trailer === undefined) return false
  if ((req as Partial<Http2ServerRequest>).stream !== undefined) return true
  return req.httpVersion === '1.1' && headers['content-length'] === undefined && method !== 'HEAD' && status !== 204 && status !== 304
}

/** Trailer fields (RFC 9110 §6.5) relayed after the body; fields Node will not write are dropped, not fatal. */
function addTrailers (res: ServerResponse, trailers: IncomingHttpHeaders): void {
  try {
    res.addTrailers(trailers as Record<string, string>)
  } catch {}
}

/**
 * An HTTP/2 upstream's trailers (pool.allowH2). undici's h2 client hands them on as
 * an object (client-h2.js, 'trailers'), which its handler adapter parses as a
 * [name, value, …] list (unwrap-handler.js, parseHeaders), so onResponseEnd gets {}
 * (undici 7.30.2); the object itself stays on the controller's rawTrailers.
 */
function isFieldObject (raw: Dispatcher.DispatchController['rawTrailers']): raw is IncomingHttpHeaders {
  return raw != null && !Array.isArray(raw) && hasAny(raw)
}

function hasAny (o: object): boolean {
  for (const _ in o) return true
  return false
}

/** The app's headers plus the balancer's cookie, added to any Set-Cookie of theirs (in whatever case they wrote it). */
function withCookie (extra: ForwardOptions['responseHeaders'], cookie: string): Record<string, string | string[] | number | undefined> {
  const out: Record<string, string | string[] | number | undefined> = {}
  const cookies: string[] = []
  for (const name in extra) {
    const v = extra[name]
    if (name.toLowerCase() !== 'set-cookie') out[name] = v
    else if (Array.isArray(v)) cookies.push(...v)
    else if (v !== undefined) cookies.push(String(v))
  }
  cookies.push(cookie)
  out['set-cookie'] = cookies
  return out
}

/** A replaced body gets a matching Content-Length and no Transfer-Encoding. */
function fixLength (headers: string[], length: number): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i] === 'content-length' || headers[i] === 'transfer-encoding') headers.splice(i, 2)
  }
  headers.push('content-length', String(length))
}
