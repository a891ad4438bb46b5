import fastifyCookie from '@fastify/cookie'
import fastifyHttpProxy from '@fastify/http-proxy'
import {
  AffinityError, createMetrics, createStatusPage,
  type AffinityMetrics, type Balancer, type Choice, type StatusPage,
} from '@affinity/core'
import { adapterOptions, logChoice, metricsAnswer, Mount, pendingUpgrade } from '@affinity/core/adapter'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { installBodyParsers } from './body.js'
import { checkRouteOptions, OWN, UNSUPPORTED, type AffinityFastifyMetricsOptions, type AffinityFastifyOptions, type AffinityFastifyStatusPageOptions } from './options.js'
import { serveAdmin } from './admin.js'
import { FastifyRouteRequest } from './route-request.js'
import { routeUpgrades } from './upgrade.js'
import { encodePrefix, mountPrefixes, upstreamPath } from './upstream-path.js'

export type { AffinityFastifyOptions, AffinityFastifyMetricsOptions, AffinityFastifyStatusPageOptions } from './options.js'
export type { AffinityFastifyAdminOptions } from './admin.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Affinity's decision for this request: upstream, reason, cookie to set. */
    affinity: Choice | null
  }
}

type ParseCookie = (header: string) => Record<string, string | undefined>

async function affinityPlugin (fastify: FastifyInstance, opts: AffinityFastifyOptions): Promise<void> {
  adapterOptions('@affinity/fastify', opts, OWN, UNSUPPORTED)
  checkRouteOptions(opts)
  const {
    prefix: _prefix, logLevel: _logLevel, logSerializers: _logSerializers,
    rewritePrefix: rawRewritePrefix, websocket = false, metrics: metricsOpts = false, statusPage: statusPageOpts = false, admin: adminOpts = false,
    onRequest, preValidation, preHandler, config, httpMethods, constraints, routes, preRewrite,
    rewriteRequestHeaders, rewriteHeaders, onError, preserveHost, internalRewriteLocationHeader,
    ...source
  } = opts
  const rewritePrefix = encodePrefix(rawRewritePrefix)
  const prefixes = mountPrefixes(fastify.prefix, rewritePrefix)
  const mount = new Mount(source, { rewriteRequestHeaders, rewriteHeaders, onError, preserveHost, internalRewriteLocationHeader }, {
    // Proxied answers are written straight to the connection, but only from their
    // first byte on: until then the reply is Fastify's, so an onError hook can answer
    // with reply.code(…).send(…) (and a handlerTimeout can still answer).
    claim: reply => { (reply as FastifyReply).hijack() },
    clientPrefix: prefixes.client as (request: unknown) => string,
    upstreamPrefix: prefixes.upstream as (request: unknown) => string,
  })
  const policy = mount.policy
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
  // The app's route-level onRequest hooks run after it (request.affinity is set); its
  // preValidation and preHandler hooks go on the route as given (a function or a list),
  // as @fastify/http-proxy puts them.
  const own = onRequest === undefined ? [] : [onRequest].flat()
  fastify.addHook('onRoute', (route) => {
    const config = route.config as Record<string, unknown> | undefined
    if (config?.[OWN_ROUTE] === true) return
    route.onRequest = [decide, ...own, ...(route.onRequest === undefined ? [] : [route.onRequest].flat())]
    if (preValidation !== undefined) route.preValidation = [preValidation, route.preValidation ?? []].flat(2)
    if (preHandler !== undefined) route.preHandler = [preHandler, route.preHandler ?? []].flat(2)
  })

  if (websocket) {
    routeUpgrades(fastify, fastify.prefix)
    // Upgraded sockets keep server.close() waiting: end them when the app closes.
    fastify.addHook('preClose', (done) => { mount.endTunnels(); done() })
  }

  const bodyOf = installBodyParsers(fastify, preValidation !== undefined)

  await fastify.register(fastifyHttpProxy, {
    // Routes, prefix / rewritePrefix handling, destination validation, preRewrite and
    // the route options (config, methods, constraints, routes) come from
    // @fastify/http-proxy (the hooks are attached in onRoute above). The per-request upstream is read from the onRequest
    // decision (getUpstream must be synchronous). Body parsers are ours (body.ts).
    upstream: '',
    rewritePrefix,
    proxyPayloads: false,
    ...(config === undefined ? {} : { config }),
    ...(httpMethods === undefined ? {} : { httpMethods }),
    ...(constraints === undefined ? {} : { constraints }),
    ...(routes === undefined ? {} : { routes }),
    ...(preRewrite === undefined ? {} : { preRewrite }),
    replyOptions: { getUpstream: (request: { affinity?: Choice | null }) => request.affinity?.upstream?.origin ?? '' },
    // Forwarding itself goes through the core forwarder instead of reply.from():
    // reply-from calls getUpstream once, so a refused connection can never fail over
    // to another upstream; it maps a refusal to 500 and retries GET + 503 ten times on
    // the same upstream. The core retries on another upstream (re-pinning the sticky
    // cookie), answers with the JSON 502/503/504 of forward/error-response.ts (or the
    // app's onError), verifies TLS and sets X-Forwarded-*. The upstream's status,
    // headers and body stream through untouched (the reply is hijacked right before
    // the first byte: see claim above); headers the app set in earlier hooks (CORS,
    // security headers) are sent with them.
    handler: (request: FastifyRequest, reply: FastifyReply, dest: string) => {
      // An upgrade's socket is the tunnel's from now on.
      if (pendingUpgrade(request.raw) !== undefined) reply.hijack()
      mount.proxy(request.affinity!, request.raw, reply.raw, {
        path: upstreamPath(request, dest, rewritePrefix),
        body: bodyOf(request),
        responseHeaders: reply.getHeaders() as Record<string, string | string[] | number | undefined>,
        policy,
        request,
        reply,
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
