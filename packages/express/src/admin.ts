import type { Balancer } from '@affinity/core'
import { adminAnswer, writeAnswer, type AdminRequest } from '@affinity/core/adapter'
import type { IncomingMessage, ServerResponse } from 'node:http'

type Next = (err?: unknown) => void

/** `app.use('/affinity/admin', requireAuth, lb.admin())`: the admin routes below the mount. */
export type AdminHandler = (req: IncomingMessage, res: ServerResponse, next?: Next) => void

/**
 * The admin routes (adapter/admin.ts in the core) as an Express handler. Mounted with
 * `app.use(path, …)`, `req.url` is the path below the mount, still percent-encoded:
 * decoded here, once, as Fastify decodes its wildcard. The handler reads the
 * `{ "weight": n }` body itself; when a body parser mounted before it has already
 * read the stream, what it parsed is used instead.
 */
export function adminHandler (balancer: Balancer): AdminHandler {
  return (req, res, next) => {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    let path: string
    try {
      path = decodeURIComponent(q === -1 ? url : url.slice(0, q))
    } catch {
      writeAnswer(res, { status: 400, headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify({ statusCode: 400, error: 'Bad Request', message: 'the path is not valid percent-encoding' }) })
      return
    }
    const aborted = new AbortController()
    res.once('close', () => { if (!res.writableFinished) aborted.abort() })
    const request: AdminRequest = { method: req.method ?? 'GET', path, query: q === -1 ? '' : url.slice(q + 1), body: bodyOf(req), signal: aborted.signal }
    adminAnswer(balancer, request).then(answer => writeAnswer(res, answer, req.method), (err: unknown) => {
      if (next !== undefined) next(err)
      else if (!res.headersSent) { res.statusCode = 500; res.end() }
    })
  }
}

/** The stream, or what a body parser mounted earlier made of it (express.json, express.text, express.raw). */
function bodyOf (req: IncomingMessage): AdminRequest['body'] {
  const consumed = (req as { _body?: boolean })._body === true || req.readableEnded
  const parsed = (req as { body?: unknown }).body
  if (consumed && parsed !== undefined) return { parsed }
  return req
}
