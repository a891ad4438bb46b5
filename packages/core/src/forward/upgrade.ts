import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import { isPromise, type Choice } from '../model/choice.js'
import type { Upstream } from '../model/upstream.js'
import type { OutcomeKind } from '../model/types.js'
import { blame, ClientGoneError, statusKind, type ForwardContext, type Outcome } from './context.js'
import { writeSocketError } from './error-response.js'
import { appendSetCookie, stripResponseHeaders, upstreamRequestHeaders } from './headers.js'
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
export function forwardUpgrade (ctx: ForwardContext, choice: Choice, req: IncomingMessage, socket: Duplex, head: Buffer, path: string): void {
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
  new Tunnel(ctx, choice, req, socket, head, requestTarget(path)).attempt(choice.upstream)
}

function noop (): void {}

class Tunnel {
  readonly headers: string[]
  attempts = 0
  clientGone = false
  controller: Dispatcher.DispatchController | undefined

  constructor (
    readonly ctx: ForwardContext,
    readonly choice: Choice,
    readonly req: IncomingMessage,
    readonly socket: Duplex,
    readonly head: Buffer,
    readonly path: string,
  ) {
    this.headers = upstreamRequestHeaders(req, choice.request)
    socket.once('close', () => {
      this.clientGone = true
      this.controller?.abort(new ClientGoneError('client closed the connection'))
    })
  }

  attempt (u: Upstream): void {
    this.attempts++
    this.choice.upstream = u
    this.ctx.begin(u)
    let reached = false
    let responded = false
    let status = 0
    let settled = false
    const startedAt = this.ctx.timing ? performance.now() : 0
    const settle = (outcome: Outcome, kind: OutcomeKind): void => {
      if (!settled) { settled = true; this.ctx.settle(u, outcome, kind, startedAt) }
    }
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (controller) => {
        reached = true
        this.controller = controller
        if (this.clientGone) controller.abort(new ClientGoneError('client closed the connection'))
      },
      onRequestUpgrade: (_controller, statusCode, headers, upstream) => {
        settle('ok', 'upgrade')
        this.splice(u, statusCode, headers, upstream as Duplex)
      },
      // The upstream answered without switching protocols: relay its answer as is.
      onResponseStart: (_controller, statusCode, headers, statusMessage) => {
        if (statusCode < 200) return
        responded = true
        status = statusCode
        if (statusCode >= 500) settle('failure', '5xx')
        stripResponseHeaders(headers)
        this.socket.write(head(statusCode, statusMessage ?? '', headers, this.choice.setCookie, undefined))
      },
      onResponseData: (_controller, chunk) => {
        this.socket.write(chunk)
      },
      onResponseEnd: () => {
        settle('ok', statusKind(status))
        this.socket.end()
      },
      onResponseError: (_controller, err) => {
        this.controller = undefined
        if (this.clientGone) { settle('neutral', 'aborted'); return }
        const b = blame(err, reached)
        settle(b.outcome, b.kind)
        if (responded) { this.socket.destroy(); return }
        if (!reached && b.retry && this.attempts <= this.ctx.retries) {
          ;(this.choice.tried ??= []).push(u)
          const next = this.ctx.repick(this.choice)
          if (isPromise(next)) next.then(n => this.retry(n), () => this.retry(undefined))
          else this.retry(next)
          return
        }
        writeSocketError(this.socket, b.answer)
      },
    }
    u.pool.dispatch({
      path: u.basePath + this.path,
      method: 'GET',
      headers: this.headers,
      upgrade: 'websocket',
      headersTimeout: this.ctx.timeoutMs,
    }, handler)
  }

  retry (next: Upstream | undefined): void {
    if (this.clientGone) return
    if (next === undefined) writeSocketError(this.socket, 'unreachable')
    else this.attempt(next)
  }

  splice (u: Upstream, statusCode: number, headers: IncomingHttpHeaders, upstream: Duplex): void {
    const client = this.socket
    if (this.clientGone) {
      upstream.destroy()
      return
    }
    const protocol = String(headers.upgrade ?? 'websocket')
    stripResponseHeaders(headers)
    client.write(head(statusCode, STATUS_CODES[statusCode] ?? '', headers, this.choice.setCookie, protocol))
    if (this.head.length > 0) upstream.write(this.head)
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

/**
 * An HTTP/1.1 response head for a raw socket: a 101 that switches to `upgrade`,
 * or (upgrade undefined) a relayed refusal delimited by closing the connection.
 */
function head (statusCode: number, statusMessage: string, headers: IncomingHttpHeaders, cookie: string | undefined, upgrade: string | undefined): string {
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
