import { AffinityError, type Balancer } from '@affinity/core'
import { adminAnswer, knownKeys } from '@affinity/core/adapter'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import { Readable } from 'node:stream'

export interface AffinityFastifyAdminOptions {
  /**
   * Path below the plugin's prefix (default '/affinity/admin', so
   * '/api/affinity/admin' under '/api'); the balancer answers it and everything
   * below it, and none of it is proxied.
   */
  route?: string
  /** Route-level onRequest hook(s) guarding the routes, e.g. `onRequest: app.basicAuth`. */
  onRequest?: onRequestHookHandler | onRequestHookHandler[]
}

/** Every method @fastify/http-proxy proxies: below the admin route none of them may reach an upstream. */
const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']

/**
 * The admin routes (adapter/admin.ts in the core) on `route` and everything below
 * it. They live in a context of their own whose only content-type parser hands the
 * body stream over untouched (the proxy's context has none: bodies are proxied raw),
 * so `POST …/weight/:id` reads its few bytes itself whatever the content type. Like
 * the metrics and status routes they skip the balancer's decision (`ownRoute`).
 */
export async function serveAdmin (fastify: FastifyInstance, balancer: Balancer, opts: boolean | AffinityFastifyAdminOptions, ownRoute: string): Promise<void> {
  if (opts === false || opts === undefined) return
  if (opts !== true && (opts === null || typeof opts !== 'object')) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'admin', 'expected true or { route, onRequest }')
  const { route = '/affinity/admin', onRequest } = opts === true ? {} : opts
  if (opts !== true) knownKeys('admin', opts, ['route', 'onRequest'])
  if (typeof route !== 'string' || !route.startsWith('/') || route.length < 2 || route.endsWith('/')) {
    throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'admin.route', 'expected a path such as /affinity/admin (starting with /, not ending with /)')
  }
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const aborted = new AbortController()
    reply.raw.once('close', () => { if (!reply.raw.writableFinished) aborted.abort() })
    const q = request.url.indexOf('?')
    const answer = await adminAnswer(balancer, {
      method: request.method,
      // The wildcard, already percent-decoded by Fastify: 'drain/http://a:1' for 'drain/http%3A%2F%2Fa%3A1'.
      path: (request.params as { '*'?: string })['*'] ?? '',
      query: q === -1 ? '' : request.url.slice(q + 1),
      body: request.body instanceof Readable ? request.body : undefined,
      signal: aborted.signal,
    })
    return reply.code(answer.status).headers(answer.headers).send(answer.body)
  }
  await fastify.register(async (admin) => {
    admin.removeAllContentTypeParsers()
    admin.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
    const shared = { method: METHODS, config: { [ownRoute]: true }, handler, ...(onRequest === undefined ? {} : { onRequest }) }
    admin.route({ ...shared, url: route })
    admin.route({ ...shared, url: `${route}/*` })
  })
}
