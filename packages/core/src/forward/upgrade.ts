import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { Choice } from '../model/choice.js'
import type { Upstream } from '../model/upstream.js'
import { statusKind, type ForwardContext } from './context.js'
import { writeSocketError, type ErrorAnswer } from './error-response.js'
import { Attempt, Exchange, type AnswerDetail } from './exchange.js'
import { appendSetCookie, stripResponseHeaders, upstreamRequestHeaders } from './headers.js'
import type { ForwardPolicy } from './policy.js'
import { requestTarget } from './target.js'

/**
 * Only WebSocket upgrades are tunnelled (Envoy's default too). Anything else —
 * `h2c` above all — would open a connection past per-request routing to an upstream
 * that speaks it ("h2c smuggling"), so it is refused with a 400. RFC 9110 §7.8: the
 * header is a list of protocol tokens; one of them must be "websocket".
 */
function isWebSocket (value: string | undefined): boolean {
  if (typeof value !== 'string') return false
  for (const token of value.split(',')) if (token.trim().toLowerCase() === 'websocket') return true
  return false
}

/**
 * Forwards an HTTP/1.1 Upgrade (WebSocket, RFC 6455 §4) to the chosen upstream
 * through undici's dispatch({ upgrade }), then splices the two sockets.
 * - The client's end-to-end headers (cookies, Authorization, Origin,
 *   Sec-WebSocket-*) and X-Forwarded-* go to the upstream.
 * - The 101 carries the balancer's Set-Cookie, so a user first seen on a
 *   WebSocket is pinned too (the bug of traefik#3343).
 * - An upstream that refuses is retried elsewhere; if none answers, the client gets
 *   an HTTP error response, never an accepted handshake that then closes.
 * - An upstream that answers without upgrading (401, 400…) has that answer relayed.
 */
export function forwardUpgrade (ctx: ForwardContext, choice: Choice, req: IncomingMessage, socket: Duplex, head: Buffer, path: string, opts?: UpgradeOptions): void {
  socket.on('error', noop)
  // Only WebSocket is tunnelled, and only as RFC 6455 §4.1 opens it: "The method of
  // the request MUST be GET". A POST + Upgrade would reach the upstream without its
  // body (Node hands those bytes over as `head`, sent after the 101).
  if (!isWebSocket(req.headers.upgrade) || req.method !== 'GET') {
    writeSocketError(socket, 'badRequest')
    return
  }
  if (choice.upstream === undefined) {
    writeSocketError(socket, 'unavailable', ctx.retryAfter())
    return
  }
  // The client left while the decision was made: its 'close' has passed.
  if (socket.destroyed) return
  let headers: string[]
  try {
    // The mount's Host rule and request-header hook apply to upgrades too.
    headers = upstreamRequestHeaders(req, choice.request, opts?.policy, opts?.request)
  } catch {
    writeSocketError(socket, 'misconfigured')
    return
  }
  new Tunnel(ctx, choice, req, socket, head, requestTarget(path), headers).attempt(choice.upstream)
}

/** What an upgrade takes from the mount: its policy's request side, and the framework's request for its hook. */
export interface UpgradeOptions {
  policy?: ForwardPolicy
  request?: unknown
}

function noop (): void {}

/** One upgrade request across its attempts (the failover rule: exchange.ts). */
class Tunnel extends Exchange {
  readonly headers: string[]
  readonly req: IncomingMessage
  readonly socket: Duplex
  /** Bytes the client sent after its request head (the first WebSocket frames). */
  readonly early: Buffer
  readonly path: string
  /** The upstream's refusal is being relayed: nothing more can be answered. */
  relaying = false

  constructor (ctx: ForwardContext, choice: Choice, req: IncomingMessage, socket: Duplex, early: Buffer, path: string, headers: string[]) {
    super(ctx, choice)
    this.req = req
    this.socket = socket
    this.early = early
    this.path = path
    this.headers = headers
    socket.once('close', () => this.clientLeft())
  }

  protected dispatch (u: Upstream): Attempt {
    const attempt = new TunnelAttempt(this, u)
    u.pool.dispatch({
      path: u.basePath + this.path,
      method: 'GET',
      headers: this.headers,
      upgrade: 'websocket',
      headersTimeout: this.ctx.timeoutMs,
    }, attempt)
    return attempt
  }

  protected responded (): boolean {
    return this.relaying
  }

  protected cut (): void {
    this.socket.destroy()
  }

  protected answer (answer: ErrorAnswer, detail: AnswerDetail = {}): void {
    writeSocketError(this.socket, answer, detail.retryAfter, detail.setCookie)
  }

  /** A handshake counts against maxWebSockets (admission.ts) until it settles; then the tunnel does. */
  override get upgrade (): boolean {
    return true
  }

  /** An upgrade that reached its upstream is not replayed: the handshake may have done something. */
  protected replayable (): boolean {
    return false
  }

  /** The upstream switched protocols: answer the client with its 101 and join the two sockets. */
  splice (u: Upstream, statusCode: number, headers: IncomingHttpHeaders, upstream: Duplex): void {
    const client = this.socket
    if (this.clientGone) {
      upstream.destroy()
      return
    }
    const protocol = String(headers.upgrade ?? 'websocket')
    stripResponseHeaders(headers)
    client.write(responseHead(statusCode, STATUS_CODES[statusCode] ?? '', headers, this.choice.setCookie, protocol))
    if (this.early.length > 0) upstream.write(this.early)
    this.ctx.socketOpened(u)
    let open = true
    const close = (): void => {
      if (!open) return
      open = false
      this.ctx.socketClosed(u)
      client.destroy()
      upstream.destroy()
    }
    upstream.on('error', close)
    client.on('error', close)
    upstream.on('close', close)
    client.on('close', close)
    upstream.pipe(client)
    client.pipe(upstream)
    upstream.resume()
  }
}

/** The undici handler of one upgrade attempt: a 101 is spliced, any other answer relayed as is. */
class TunnelAttempt extends Attempt implements Dispatcher.DispatchHandler {
  declare readonly ex: Tunnel
  status = 0

  onRequestUpgrade (_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, upstream: Duplex): void {
    this.settle('ok', 'upgrade')
    this.ex.splice(this.u, statusCode, headers, upstream)
  }

  onResponseStart (_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (statusCode < 200) return
    this.ex.relaying = true
    this.status = statusCode
    if (statusCode >= 500) this.settle('failure', '5xx')
    stripResponseHeaders(headers)
    this.ex.socket.write(responseHead(statusCode, statusMessage ?? '', headers, this.ex.choice.setCookie, undefined))
  }

  onResponseData (_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.ex.socket.write(chunk)
  }

  onResponseEnd (): void {
    this.settle('ok', statusKind(this.status))
    this.ex.socket.end()
  }
}

/**
 * An HTTP/1.1 response head for a raw socket: a 101 that switches to `upgrade`,
 * or (upgrade undefined) a relayed refusal delimited by closing the connection.
 */
function responseHead (statusCode: number, statusMessage: string, headers: IncomingHttpHeaders, cookie: string | undefined, upgrade: string | undefined): string {
  const h = headers as Record<string, string | string[] | undefined>
  if (cookie !== undefined) appendSetCookie(h, cookie)
  let out = `HTTP/1.1 ${statusCode} ${statusMessage || STATUS_CODES[statusCode] || ''}\r\n`
  for (const name in h) {
    const value = h[name]
    if (value === undefined) continue
    if (Array.isArray(value)) for (const v of value) out += `${name}: ${v}\r\n`
    else out += `${name}: ${value}\r\n`
  }
  out += upgrade === undefined ? 'connection: close\r\n\r\n' : `connection: Upgrade\r\nupgrade: ${upgrade}\r\n\r\n`
  return out
}
