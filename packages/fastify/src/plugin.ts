import fastifyCookie from '@fastify/cookie'
import fastifyHttpProxy from '@fastify/http-proxy'
import {
  AffinityError, createMetrics, createStatusPage,
  type AffinityMetrics, type Balancer, type BalancerSource, type Choice, type MetricsRegistry, type StatusPage, type StatusPageOptions,
} from '@affinity/core'
import { adapterOptions, logChoice, metricsAnswer, Mount } from '@affinity/core/adapter'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { Readable } from 'node:stream'
import { serveAdmin, type AffinityFastifyAdminOptions } from './admin.js'
import { FastifyRouteRequest } from './route-request.js'
import { routeUpgrades } from './upgrade.js'
import { encodePrefix, upstreamPath } from './upstream-path.js'

export interface AffinityFastifyOptions extends BalancerSource {
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

declare module 'fastify' {
  interface FastifyRequest {
    /** Affinity's decision for this request: upstream, reason, cookie to set. */
    affinity: Choice | null
  }
}

type ParseCookie = (header: string) => Record<string, string | undefined>

/** The plugin's own options; everything else it takes is `balancer` or a balancer option. */
const OWN = ['prefix', 'rewritePrefix', 'websocket', 'metrics', 'statusPage', 'admin'] as const satisfies ReadonlyArray<keyof AffinityFastifyOptions>

async function affinityPlugin (fastify: FastifyInstance, opts: AffinityFastifyOptions): Promise<void> {
  adapterOptions('@affinity/fastify', opts, OWN)
  const { prefix: _prefix, rewritePrefix: rawRewritePrefix, websocket = false, metrics: metricsOpts = false, statusPage: statusPageOpts = false, admin: adminOpts = false, ...source } = opts
  const rewritePrefix = encodePrefix(rawRewritePrefix)
  const mount = new Mount(source)
  try {
    await serveMetrics(fastify, mount.balancer, metricsOpts)
    await serveStatusPage(fastify, mount.balancer, statusPageOpts)
    await serveAdmin(fastify, mount.balancer, adminOpts, OWN_ROUTE)
  } catch (err) {
    // Registration fails (prom-client missing…): a balancer built here must not outlive it.
    await mount.close()
    throw err
  }

  // @fastify/cookie parses the balancer cookie. Registered here (encapsulated, with
  // no parsing hook) only if the app has not: strategies parse lazily, on demand.
  if (!fastify.hasPlugin('@fastify/cookie')) await fastify.register(fastifyCookie, { hook: false })
  const parseCookie = (fastify as unknown as { parseCookie: ParseCookie }).parseCookie

  mount.logTo(fastify.log)
  fastify.decorateRequest('affinity', null)

  // The choice is made once per request, before body parsing and the app's own
  // preHandlers (which can read request.affinity), and possibly asynchronously
  // (a shared stick store). The same hook runs for routed WebSocket upgrades.
  const balancer = mount.balancer
  const decide: onRequestHookHandler = (request, _reply, done) => {
    const choice = balancer.choose(new FastifyRouteRequest(request, parseCookie))
    if (choice instanceof Promise) {
      choice.then(c => { request.affinity = c; logChoice(request.log, c); done() }, done)
    } else {
      request.affinity = choice
      logChoice(request.log, choice)
      done()
    }
  }
  // Attached to the proxied routes as they are declared, so the metrics and status
  // routes (a scrape or a page view is no pick) skip it with no test per request.
  fastify.addHook('onRoute', (route) => {
    const config = route.config as Record<string, unknown> | undefined
    if (config?.[OWN_ROUTE] === true) return
    route.onRequest = route.onRequest === undefined ? [decide] : [decide, ...[route.onRequest].flat()]
  })

  if (websocket) {
    routeUpgrades(fastify, fastify.prefix)
    // Upgraded sockets keep server.close() waiting: end them when the app closes.
    fastify.addHook('preClose', (done) => { mount.endTunnels(); done() })
  }

  // Bodies are proxied byte for byte: drop every parser this context inherited
  // (Fastify's own text/plain parser would otherwise buffer text bodies into a string,
  // and an app's form or multipart parser would consume them); @fastify/http-proxy
  // then installs its pass-through parser for every content type.
  fastify.removeAllContentTypeParsers()

  await fastify.register(fastifyHttpProxy, {
    // Routes, prefix / rewritePrefix handling, destination validation and the
    // body pass-through parser come from @fastify/http-proxy. The per-request upstream
    // is read from the onRequest decision (getUpstream must be synchronous).
    upstream: '',
    rewritePrefix,
    replyOptions: { getUpstream: (request: { affinity?: Choice | null }) => request.affinity?.upstream?.origin ?? '' },
    // Forwarding itself goes through the core forwarder instead of reply.from():
    // reply-from calls getUpstream once, so a refused connection can never fail over
    // to another upstream; it maps a refusal to 500 and retries GET + 503 ten times on
    // the same upstream. The core retries on another upstream (re-pinning the sticky
    // cookie), answers with the JSON 502/503/504 of forward/error-response.ts, verifies TLS and sets X-Forwarded-*.
    // Proxied responses are written straight to the socket (reply.hijack), so the
    // upstream's status, headers and body stream through untouched; headers the app
    // set in earlier hooks (CORS, security headers) are sent with them.
    handler: (request: FastifyRequest, reply: FastifyReply, dest: string) => {
      reply.hijack()
      mount.proxy(request.affinity!, request.raw, reply.raw, {
        path: upstreamPath(request, dest, rewritePrefix),
        body: bodyOf(request),
        responseHeaders: reply.getHeaders() as Record<string, string | string[] | number | undefined>,
      })
    },
    // reply-from is registered by @fastify/http-proxy but never called; release its agent on close.
    destroyAgent: true,
    disableRequestLogging: true,
  })

  fastify.addHook('onClose', async () => { await mount.close() })
}

/** Marks the plugin's own routes (metrics, status page): never proxied, never a pick. */
const OWN_ROUTE = 'affinityOwnRoute'

/**
 * GET `route` below the prefix answers with the exposition text. Its requests skip
 * the balancer's decision (a scrape is not a pick), and the metrics stop with the app.
 */
async function serveMetrics (fastify: FastifyInstance, balancer: Balancer, opts: boolean | AffinityFastifyMetricsOptions): Promise<AffinityMetrics | undefined> {
  if (opts === false) return undefined
  const { route = '/metrics', registry } = opts === true ? {} : opts
  if (typeof route !== 'string' || !route.startsWith('/')) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'metrics.route', 'expected a path starting with /')
  const metrics = await createMetrics(balancer, { registry })
  fastify.addHook('onClose', (_instance, done) => { metrics.close(); done() })
  fastify.get(route, { config: { [OWN_ROUTE]: true } }, async (_request, reply) => {
    const answer = await metricsAnswer(metrics)
    return reply.code(answer.status).headers(answer.headers).send(answer.body)
  })
  return metrics
}

/**
 * GET `route` below the prefix answers with the status page (`?format=json`: its
 * data). Like the metrics route it skips the balancer's decision, so viewing the
 * page neither counts as a pick nor pins the viewer; its sampler stops with the app.
 */
async function serveStatusPage (fastify: FastifyInstance, balancer: Balancer, opts: boolean | AffinityFastifyStatusPageOptions): Promise<StatusPage | undefined> {
  if (opts === false) return undefined
  const { route = '/affinity/status', onRequest, ...pageOpts } = opts === true ? {} : opts
  if (typeof route !== 'string' || !route.startsWith('/')) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'statusPage.route', 'expected a path starting with /')
  const page = createStatusPage(balancer, pageOpts)
  fastify.addHook('onClose', (_instance, done) => { page.close(); done() })
  fastify.get(route, { config: { [OWN_ROUTE]: true }, ...(onRequest === undefined ? {} : { onRequest }) }, async (request, reply) => {
    const r = page.respond(request.url)
    return reply.code(r.status).headers(r.headers).send(r.body)
  })
  return page
}

/** The body stream the pass-through parser produced (a preParsing hook may have wrapped it), if any. */
function bodyOf (request: FastifyRequest): Readable | undefined {
  const body = request.body
  return body instanceof Readable ? body : undefined
}

/**
 * Affinity as a Fastify plugin. Encapsulated (fastify-plugin `encapsulate: true`,
 * as @fastify/http-proxy does), so each registration with its own prefix is an
 * independent proxy, yet the plugin is named for `dependencies` checks.
 */
export const affinity = fp(affinityPlugin, {
  name: '@affinity/fastify',
  fastify: '5.x',
  encapsulate: true,
})
