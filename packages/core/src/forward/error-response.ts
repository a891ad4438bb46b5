import type { ServerResponse } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
import type { Duplex } from 'node:stream'
import { STATUS_CODES } from 'node:http'

/**
 * Every answer the balancer gives itself, as JSON { statusCode, error, message }
 * (the shape Fastify uses), with the stable `code` an `onError` hook sees on its
 * ProxyError. Messages are fixed strings: never an upstream address, never an
 * internal error message.
 */
export const ANSWERS = {
  misconfigured: [500, 'The proxy is misconfigured', 'AFFINITY_ERR_PROXY_MISCONFIGURED'],
  unreachable: [502, 'No upstream could be reached', 'AFFINITY_ERR_UPSTREAM_UNREACHABLE'],
  unexpected100: [502, 'The upstream sent an unsolicited 100 Continue, which the proxy cannot relay', 'AFFINITY_ERR_UPSTREAM_UNEXPECTED_100'],
  badResponse: [502, 'The upstream sent a response head the proxy cannot relay', 'AFFINITY_ERR_UPSTREAM_BAD_RESPONSE'],
  unavailable: [503, 'No upstream is available', 'AFFINITY_ERR_NO_UPSTREAM_AVAILABLE'],
  queueFull: [503, 'The upstream is at capacity and no more requests can wait for it', 'AFFINITY_ERR_QUEUE_FULL'],
  queueTimeout: [503, 'The upstream had no capacity for this request in time', 'AFFINITY_ERR_QUEUE_TIMEOUT'],
  websocketsFull: [503, 'The upstream has no room for another WebSocket', 'AFFINITY_ERR_WEBSOCKETS_FULL'],
  timeout: [504, 'The upstream did not respond in time', 'AFFINITY_ERR_UPSTREAM_TIMEOUT'],
  badRequest: [400, 'Bad request', 'AFFINITY_ERR_BAD_REQUEST'],
} as const satisfies Record<string, readonly [number, string, string]>

export type ErrorAnswer = keyof typeof ANSWERS

/** The stable code of each answer, e.g. 'AFFINITY_ERR_UPSTREAM_TIMEOUT'. */
export type ProxyErrorCode = (typeof ANSWERS)[ErrorAnswer][2]

/**
 * An answer the balancer would give itself, handed to an `onError` hook instead:
 * `statusCode` and `message` are the JSON answer's, `code` is stable, `cause` is
 * what went wrong when there is something to tell (undici's error, or what a
 * rewrite hook threw), `retryAfter` the seconds a 503 would advertise. Built only
 * when a hook is there to receive it.
 */
export class ProxyError extends Error {
  readonly statusCode: number
  readonly code: ProxyErrorCode
  /** Seconds for a Retry-After header (503 only). */
  readonly retryAfter: number | undefined

  constructor (answer: ErrorAnswer, retryAfter?: number, cause?: unknown) {
    const [status, message, code] = ANSWERS[answer]
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'ProxyError'
    this.statusCode = status
    this.code = code
    this.retryAfter = retryAfter
  }
}

/** What an adapter or the forwarder may write to: an HTTP/1 or HTTP/2 (compatibility API) response. */
export type ClientResponse = ServerResponse | Http2ServerResponse

/** Bodies are built once: they never vary. */
const BODIES = Object.fromEntries(Object.entries(ANSWERS).map(([name, [status, message]]) =>
  [name, JSON.stringify({ statusCode: status, error: STATUS_CODES[status], message })])) as Record<ErrorAnswer, string>

export function errorBody (answer: ErrorAnswer): string {
  return BODIES[answer]
}

export function sendError (res: ClientResponse, answer: ErrorAnswer, retryAfter?: number, extra?: Record<string, string | string[] | number | undefined>): void {
  if (res.headersSent) {
    cutResponse(res)
    return
  }
  if (isClosed(res)) return
  const body = BODIES[answer]
  const headers: Record<string, string | string[] | number> = {}
  if (extra !== undefined) for (const name in extra) if (extra[name] !== undefined) headers[name.toLowerCase()] = extra[name]!
  Object.assign(headers, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  })
  if (retryAfter !== undefined) headers['retry-after'] = retryAfter
  res.writeHead(ANSWERS[answer][0], headers)
  res.end(body)
}

/** Only its presence matters: an h2 stream destroyed with an error is reset with INTERNAL_ERROR. */
const CUT = new Error('the upstream response was cut short')

/**
 * Ends a response part of which went out so that the client sees it incomplete,
 * never a truncated body passed off as complete: an HTTP/1.x connection is closed
 * mid-message; an HTTP/2 stream is reset with INTERNAL_ERROR. (Destroyed without an
 * error, node:http2 resets it with NO_ERROR, the code of a complete response (RFC
 * 9113 §8.1), and node:http2's own client reads that as a clean end.)
 */
export function cutResponse (res: ClientResponse): void {
  if ('stream' in res) res.destroy(CUT)
  else res.destroy()
}

/** Whether nothing more can be written: the client left or the answer was ended. */
export function isClosed (res: ClientResponse): boolean {
  if (res.writableEnded) return true
  // An h2 compatibility response has no `destroyed` of its own: its stream's says it.
  return 'stream' in res ? res.stream.destroyed : res.destroyed
}

/** The same answer on a raw socket, for upgrade requests that never became WebSockets. */
export function writeSocketError (socket: Duplex, answer: ErrorAnswer, retryAfter?: number, setCookie?: string): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy()
    return
  }
  const body = BODIES[answer]
  const status = ANSWERS[answer][0]
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    (retryAfter !== undefined ? `retry-after: ${retryAfter}\r\n` : '') +
    (setCookie !== undefined ? `set-cookie: ${setCookie}\r\n` : '') +
    'cache-control: no-store\r\nconnection: close\r\n\r\n' + body,
  )
}
