import type { ExpressRequest } from './route-request.js'

/** Why a body that a parser consumed cannot be forwarded. */
export class BodyConsumedError extends Error {
  readonly code = 'AFFINITY_ERR_BODY_CONSUMED'
  readonly status = 500
  readonly statusCode = 500
  constructor (type: string) {
    super(`The request body (${type}) was read by a body parser mounted before Affinity and cannot be forwarded as it was sent. Mount body parsers after the Affinity middleware, or on the routes that need them.`)
    this.name = 'BodyConsumedError'
  }
}

/**
 * The body to forward. Untouched request streams are forwarded as they are (the
 * common case). When a body parser mounted before the middleware has read the
 * stream, what it parsed is re-encoded in the same media type — express.raw (a
 * Buffer), express.text (a string), express.json (JSON.stringify of the value:
 * equal JSON, not necessarily the same bytes), express.urlencoded with flat
 * fields — and anything else is refused with a BodyConsumedError passed to
 * next(), so the app's error handler answers instead of a silently empty body.
 */
export function forwardableBody (req: ExpressRequest): Buffer | string | undefined | BodyConsumedError {
  const consumed = (req as { _body?: boolean })._body === true || req.readableEnded
  if (!consumed || req.body === undefined) return undefined
  const body = req.body
  if (Buffer.isBuffer(body)) return body
  if (typeof body === 'string') return body
  const type = String(req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase()
  if (type === 'application/json' || type.endsWith('+json')) return JSON.stringify(body)
  if (type === 'application/x-www-form-urlencoded' && isFlat(body)) {
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(body as Record<string, string | string[]>)) {
      for (const item of Array.isArray(v) ? v : [v]) params.append(k, item)
    }
    return params.toString()
  }
  return new BodyConsumedError(type || 'unknown type')
}

function isFlat (body: unknown): boolean {
  if (body === null || typeof body !== 'object') return false
  return Object.values(body).every(v => typeof v === 'string' || (Array.isArray(v) && v.every(x => typeof x === 'string')))
}
