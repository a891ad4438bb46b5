import type { ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { STATUS_CODES } from 'node:http'

/**
 * Errors the balancer answers itself, as JSON { statusCode, error, message }
 * (the shape Fastify uses). Messages are fixed strings: never an upstream address,
 * never an internal error message.
 */
export const MESSAGES = {
  500: 'The proxy is misconfigured',
  502: 'No upstream could be reached',
  503: 'No upstream is available',
  504: 'The upstream did not respond in time',
  400: 'Bad request',
} as const

export type ErrorStatus = keyof typeof MESSAGES

export function errorBody (status: ErrorStatus): string {
  return JSON.stringify({ statusCode: status, error: STATUS_CODES[status], message: MESSAGES[status] })
}

export function sendError (res: ServerResponse, status: ErrorStatus, retryAfter?: number, extra?: Record<string, string | string[] | number | undefined>): void {
  if (res.headersSent) {
    // Part of an upstream response went out: cut the connection so the client sees
    // an incomplete message, never a truncated body passed off as complete.
    res.destroy()
    return
  }
  if (res.destroyed || res.writableEnded) return
  const body = errorBody(status)
  const headers: Record<string, string | string[] | number> = {}
  if (extra !== undefined) for (const name in extra) if (extra[name] !== undefined) headers[name.toLowerCase()] = extra[name]!
  Object.assign(headers, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  })
  if (retryAfter !== undefined) headers['retry-after'] = retryAfter
  res.writeHead(status, headers)
  res.end(body)
}

/** The same answer on a raw socket, for upgrade requests that never became WebSockets. */
export function writeSocketError (socket: Duplex, status: ErrorStatus, retryAfter?: number): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy()
    return
  }
  const body = errorBody(status)
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    (retryAfter !== undefined ? `retry-after: ${retryAfter}\r\n` : '') +
    'cache-control: no-store\r\nconnection: close\r\n\r\n' + body,
  )
}
