import { AffinityError, type BalancerSource, type MetricsRegistry, type ProxyOptions, type StatusPageOptions } from '@affinity/core'
import { PROXY_OPTIONS, type Unsupported } from '@affinity/core/adapter'
import type { FastifyReply, FastifyRequest, HTTPMethods, onRequestHookHandler, RouteShorthandOptions } from 'fastify'
import type { AffinityFastifyAdminOptions } from './admin.js'

export interface AffinityFastifyOptions extends BalancerSource, ProxyOptions<FastifyRequest, FastifyReply> {
  /** Mount point, as in @fastify/http-proxy (Fastify's register option). */
  prefix?: string
  /** Prepended to the path below the prefix, as in @fastify/http-proxy. */
  rewritePrefix?: string
  /** Proxy WebSocket upgrades under the prefix, with the same sticky choice. */
  websocket?: boolean
  /** Prometheus metrics (needs prom-client) served on GET `route` below the prefix: `true` or options. */
  metrics?: boolean | AffinityFastifyMetricsOptions
  /** The status page (off by default) on GET `route` below the prefix: `true` or options. Protect it: it shows who is pinned where. */
  statusPage?: boolean | AffinityFastifyStatusPageOptions
  /**
   * The admin routes (off by default) on `route` below the prefix: GET the upstreams,
   * POST …/drain/:id, …/undrain/:id, …/weight/:id. `true` or options; guard them
   * with `onRequest` as the status page is guarded.
   */
  admin?: boolean | AffinityFastifyAdminOptions
  /** Route-level `onRequest` hook(s) of the proxied routes; they run after the balancer's decision (`request.affinity` is set). */
  onRequest?: RouteShorthandOptions['onRequest']
  /**
   * Route-level `preValidation` hook(s), as in @fastify/http-proxy: JSON and text
   * bodies are parsed for them (`request.body`, Fastify's own parsers and
   * `bodyLimit`), and still forwarded byte for byte as received; other bodies stream.
   */
  preValidation?: RouteShorthandOptions['preValidation']
  /** Route-level `preHandler` hook(s), as in @fastify/http-proxy (authentication: answer, and nothing is forwarded). */
  preHandler?: RouteShorthandOptions['preHandler']
  /** The proxied routes' `config` (`request.routeOptions.config`), as in @fastify/http-proxy. */
  config?: RouteShorthandOptions['config']
  /** The proxied methods, as in @fastify/http-proxy (default DELETE, GET, HEAD, PATCH, POST, PUT, OPTIONS). */
  httpMethods?: HTTPMethods[]
  /** The proxied routes' `constraints` (host, version, custom), as in @fastify/http-proxy. */
  constraints?: RouteShorthandOptions['constraints']
  /** The routes below the prefix to proxy, as in @fastify/http-proxy (default ['/', '/*']). */
  routes?: string[]
  /** Rewrites the URL before the prefix is replaced, as in @fastify/http-proxy: `(url, params, prefix) => url`, synchronous. */
  preRewrite?: (url: string, params: unknown, prefix: string) => string
  /** Fastify's own register options: handled by Fastify. */
  logLevel?: RouteShorthandOptions['logLevel']
  logSerializers?: RouteShorthandOptions['logSerializers']
}

export interface AffinityFastifyMetricsOptions {
  /**
   * Path below the plugin's prefix (default '/metrics', so '/api/metrics' under
   * '/api'); the balancer answers it and it is never proxied.
   */
  route?: string
  /** A prom-client Registry of yours; default: one of their own (never the global one). */
  registry?: MetricsRegistry
}

export interface AffinityFastifyStatusPageOptions extends StatusPageOptions {
  /**
   * Path below the plugin's prefix (default '/affinity/status', so
   * '/api/affinity/status' under '/api'); the balancer answers it and it is never proxied.
   */
  route?: string
  /** Route-level onRequest hook(s) guarding the page, e.g. `onRequest: app.basicAuth`. */
  onRequest?: onRequestHookHandler | onRequestHookHandler[]
}

/** @fastify/http-proxy's route options the plugin passes on with the same meaning. */
export const ROUTE_OPTIONS = [
  'onRequest', 'preValidation', 'preHandler', 'config', 'httpMethods', 'constraints', 'routes', 'preRewrite',
] as const satisfies ReadonlyArray<keyof AffinityFastifyOptions>

/** The plugin's own options; everything else it takes is `balancer` or a balancer option. */
export const OWN = [
  'prefix', 'rewritePrefix', 'websocket', 'metrics', 'statusPage', 'admin', 'logLevel', 'logSerializers', ...ROUTE_OPTIONS, ...PROXY_OPTIONS,
] as const satisfies ReadonlyArray<keyof AffinityFastifyOptions>

const TRANSPORT = 'Affinity forwards through an undici Pool of its own per upstream, not @fastify/reply-from: tune it with `pool` (undici Pool options) and `timeoutMs`'
const RETRIES = 'failover is the balancer\'s: `retries` tries another upstream (a request that reached one is replayed only if idempotent)'

/**
 * Every option of @fastify/http-proxy 11.x (README, index.js) and of the
 * @fastify/reply-from options it passes on that the plugin does not take, with
 * what to use instead. Refused with AFFINITY_ERR_UNSUPPORTED_OPTION, never ignored.
 */
export const UNSUPPORTED: Unsupported = {
  from: '@fastify/http-proxy',
  options: {
    upstream: 'pass `upstreams: [url, …]` (or a `balancer`): the balancer picks the upstream of each request; a path in the URL is a base path prepended to every request (use `rewritePrefix` for @fastify/http-proxy\'s meaning)',
    wsUpstream: 'WebSocket upgrades go to the same `upstreams` as HTTP (ws:// and wss:// URLs are accepted there)',
    replyOptions: 'there is no reply-from: use the top-level `rewriteHeaders`, `rewriteRequestHeaders` and `onError(request, reply, err)`; the balancer replaces `getUpstream`',
    handler: 'the handler is the proxy: answer requests yourself in a `preHandler`, or register routes of your own next to the plugin',
    beforeHandler: 'use `preHandler`',
    proxyPayloads: 'bodies are forwarded byte for byte; with `preValidation`, JSON and text bodies are parsed for your hook and still forwarded as received',
    wsServerOptions: 'WebSocket upgrades are tunnelled, not terminated: there is no ws server to configure (guard upgrades with `onRequest` or `preHandler`)',
    wsClientOptions: 'the tunnel forwards every end-to-end header and the query string as sent; change headers with `rewriteRequestHeaders`',
    wsReconnect: 'a tunnel whose upstream goes away is closed; the client reconnects and the balancer picks again',
    wsHooks: 'WebSocket frames are relayed as bytes (a TCP tunnel), not as messages: there is no per-message hook',
    getUpstream: 'the balancer picks the upstream (`strategy`)',
    onResponse: 'responses stream to the client untouched; change headers with `rewriteHeaders`',
    base: TRANSPORT,
    undici: TRANSPORT,
    http: TRANSPORT,
    http2: `${TRANSPORT} (pool: { allowH2: true } for HTTP/2 upstreams)`,
    globalAgent: TRANSPORT,
    sessionTimeout: TRANSPORT,
    destroyAgent: 'the pools are closed with the balancer',
    timeout: 'use `timeoutMs` (and `idleTimeoutMs`)',
    retryMethods: RETRIES,
    retriesCount: RETRIES,
    maxRetriesOn503: RETRIES,
    retryDelay: RETRIES,
    cacheURLs: 'there is no URL cache to size',
    disableCache: 'there is no URL cache to disable',
    contentTypesToEncode: 'bodies are forwarded as received, never re-encoded',
    disableRequestLogging: 'nothing is logged per request except the decision at debug level',
    queryString: 'the query string is forwarded as sent; rewrite it with `preRewrite`',
    method: 'the method is forwarded as sent',
    body: 'the body is forwarded as sent',
    contentType: 'the body is forwarded as sent',
  },
}

/** Type checks of the route options (Fastify checks the hooks' shapes itself when the routes are added). */
export function checkRouteOptions (opts: AffinityFastifyOptions): void {
  const fn = (name: string, v: unknown, list: boolean): void => {
    if (v === undefined) return
    const ok = typeof v === 'function' || (list && Array.isArray(v) && v.length > 0 && v.every(f => typeof f === 'function'))
    if (!ok) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', name, list ? 'expected a hook function or an array of them' : 'expected a function')
  }
  fn('onRequest', opts.onRequest, true)
  fn('preValidation', opts.preValidation, true)
  fn('preHandler', opts.preHandler, true)
  fn('preRewrite', opts.preRewrite, false)
  const strings = (name: string, v: unknown, check: (s: string) => boolean, what: string): void => {
    if (v === undefined) return
    if (!Array.isArray(v) || v.length === 0 || !v.every(s => typeof s === 'string' && check(s))) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', name, what)
  }
  strings('httpMethods', opts.httpMethods, s => /^[A-Z-]+$/.test(s), 'expected a non-empty array of method names (\'GET\', \'POST\', …)')
  strings('routes', opts.routes, s => s.startsWith('/'), 'expected a non-empty array of paths starting with /')
  for (const name of ['config', 'constraints'] as const) {
    const v = opts[name]
    if (v !== undefined && (v === null || typeof v !== 'object' || Array.isArray(v))) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', name, 'expected an object')
  }
}
