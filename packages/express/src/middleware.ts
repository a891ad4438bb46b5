import {
  AffinityError, createMetrics, createStatusPage,
  type AffinityLogger, type AffinityMetrics, type Balancer, type BalancerSource, type Choice, type MetricsRegistry, type PathRewrite, type ProxyOptions, type StatusPage, type StatusPageOptions,
} from '@affinity/core'
import { adapterOptions, logChoice, metricsAnswer, Mount, pathRewriter, pendingUpgrade, PROXY_OPTIONS, writeAnswer, writeSocketError } from '@affinity/core/adapter'
import { adminHandler, type AdminHandler } from './admin.js'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { BodyConsumedError, forwardableBody } from './body.js'
import { UNSUPPORTED } from './unsupported.js'
import { ExpressRouteRequest, type ExpressRequest } from './route-request.js'
import { routeThroughApp, type ExpressApp } from './upgrade.js'

export interface AffinityExpressOptions extends BalancerSource, ProxyOptions<ExpressRequest, ServerResponse> {
  /**
   * The Express app whose middleware and `trust proxy` setting WebSocket upgrades
   * go through. Found automatically from the server when it was created by
   * `app.listen()` or `http.createServer(app)`; pass it when the server's request
   * listener is something else.
   */
  app?: ExpressApp
  /**
   * Prometheus metrics (needs prom-client), served by `lb.metrics()`. `true` or
   * `{ registry }` starts them with the middleware; left out, the first
   * `lb.metrics()` starts them (own registry); `false` turns them off.
   */
  metrics?: boolean | AffinityExpressMetricsOptions
  /**
   * A pino-like logger (`{ debug, info, warn }` with pino's `(obj, msg)`): upstream
   * state changes at info/warn, each request's decision at debug.
   */
  logger?: AffinityLogger
  /**
   * http-proxy-middleware's `pathRewrite`: `{ '^/old': '/new' }` (regular expressions
   * as strings; the first that matches is applied) or `(path, req) => path` (a promise
   * of one is awaited). `path` is the path and query below the mount; WebSocket
   * upgrades are rewritten too.
   */
  pathRewrite?: PathRewrite<ExpressRequest>
}

export interface AffinityExpressMetricsOptions {
  /** A prom-client Registry of yours; default: one of their own (never the global one). */
  registry?: MetricsRegistry
}

type Next = (err?: unknown) => void

/** `app.get('/metrics', lb.metrics())`: answers with the exposition text. */
export type MetricsHandler = (req: IncomingMessage, res: ServerResponse, next?: Next) => void

/** `app.get('/lb-status', requireAuth, lb.statusPage())`: answers GET and HEAD. */
export type StatusPageHandler = (req: IncomingMessage, res: ServerResponse, next?: Next) => void

export interface AffinityMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: Next): void
  /** The balancer behind this middleware. */
  readonly balancer: Balancer
  /** `server.on('upgrade', lb.upgrade)`: WebSocket upgrades with the same sticky choice. */
  upgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void
  /** A handler serving the Prometheus metrics: `app.get('/metrics', lb.metrics())`. */
  metrics (): MetricsHandler
  /**
   * A handler serving the status page (`?format=json`: its data), which starts its
   * sampler: `app.get('/lb-status', requireAuth, lb.statusPage())`. Put an auth
   * middleware before it: the page shows who is pinned where.
   */
  statusPage (opts?: StatusPageOptions): StatusPageHandler
  /**
   * A handler for the admin routes, to mount at a path of yours behind your auth:
   * `app.use('/affinity/admin', requireAuth, lb.admin())`. GET / lists the upstreams;
   * POST /drain/:id, /undrain/:id, /weight/:id ({ "weight": n }, read by the handler:
   * no body parser needed) change them, everywhere when a control is attached.
   */
  admin (): AdminHandler
  /** Ends open WebSocket tunnels, stops metrics and logging and, if it built the balancer from options, closes it. */
  close (): Promise<void>
}

/**
 * The path to request from the upstream: `req.url` below the mount, in origin-form.
 * Node and Express keep an absolute-form request-target (`GET http://evil.example/x`,
 * RFC 9112 §3.2.2) as it came, mount stripped ('http://evil.example/x' below '/api');
 * sent on as is, the upstream would take the client's authority over the Host the
 * balancer sets. A gateway forwards the path and query only (as @fastify/http-proxy,
 * which refuses absolute-form with a 400, and nginx do).
 */
function originForm (url: string | undefined): string {
  if (url === undefined || url === '') return '/'
  if (url.charCodeAt(0) === 47 /* / */) return url
  const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(url)
  if (authority === null) return url
  const rest = url.slice(authority[0].length)
  return rest.charCodeAt(0) === 47 ? rest : `/${rest}`
}

/** A rewritten path in origin-form: a rewrite that dropped the leading slash gets it back. */
function slashed (path: string): string {
  return path.charCodeAt(0) === 47 ? path : `/${path}`
}

/** The middleware's own options; everything else it takes is `balancer` or a balancer option. */
const OWN = ['app', 'metrics', 'logger', 'pathRewrite', ...PROXY_OPTIONS] as const satisfies ReadonlyArray<keyof AffinityExpressOptions>

/** The client-side mount of a request, for the Location rewrite: what Express stripped from its URL. */
const baseUrl = (req: unknown): string => (req as ExpressRequest).baseUrl ?? ''

/**
 * Affinity as Express middleware (Express 5, and 4): `app.use('/api', affinity({...}))`.
 * Forwards through the core's undici forwarder; the upstream sees the path below
 * the mount (req.url).
 */
export function affinity (opts: AffinityExpressOptions): AffinityMiddleware {
  adapterOptions('@affinity/express', opts, OWN, UNSUPPORTED)
  const {
    app, metrics: metricsOpts, logger, pathRewrite,
    rewriteRequestHeaders, rewriteHeaders, onError, preserveHost, internalRewriteLocationHeader,
    ...source
  } = opts
  const rewritePath = pathRewriter(pathRewrite)
  const mount = new Mount(source, { rewriteRequestHeaders, rewriteHeaders, onError, preserveHost, internalRewriteLocationHeader }, { clientPrefix: baseUrl })
  const policy = mount.policy
  const balancer = mount.balancer
  if (logger !== undefined) mount.logTo(logger)
  const statusPages = new Set<StatusPage>()
  let metrics: Promise<AffinityMetrics> | undefined
  const startMetrics = (): Promise<AffinityMetrics> => {
    if (metrics === undefined) {
      metrics = createMetrics(balancer, typeof metricsOpts === 'object' ? metricsOpts : {})
      // Reported now, and to each scrape through next(err).
      metrics.catch((err: Error) => process.emitWarning(`@affinity/express: ${err.message}`, 'AffinityWarning'))
    }
    return metrics
  }
  if (metricsOpts === true || (typeof metricsOpts === 'object' && metricsOpts !== null)) void startMetrics()

  const send = (choice: Choice, req: ExpressRequest, res: ServerResponse, next: Next, path: string): void => {
    let body: Buffer | string | undefined
    if (pendingUpgrade(req) === undefined) {
      const b = forwardableBody(req)
      if (b instanceof BodyConsumedError) {
        next(b)
        return
      }
      body = b
    }
    mount.proxy(choice, req, res, {
      path,
      body,
      // Headers earlier middleware set (CORS, security headers) go out with the answer.
      responseHeaders: res.getHeaders() as Record<string, string | string[] | number | undefined>,
      policy,
      request: req,
      reply: res,
    })
  }

  const forward = (choice: Choice, req: ExpressRequest, res: ServerResponse, next: Next): void => {
    if (logger !== undefined) logChoice(logger, choice, { method: req.method, url: req.originalUrl ?? req.url })
    const path = originForm(req.url)
    if (rewritePath === undefined) {
      send(choice, req, res, next, path)
      return
    }
    // The app's rewrite may throw or reject: its error goes to the app's error handler.
    let rewritten: string | Promise<string>
    try {
      rewritten = rewritePath(path, req)
    } catch (err) {
      next(err)
      return
    }
    if (typeof rewritten === 'string') send(choice, req, res, next, slashed(rewritten))
    else rewritten.then(p => send(choice, req, res, next, slashed(p)), next)
  }

  const middleware = ((req: ExpressRequest, res: ServerResponse, next: Next): void => {
    const choice = balancer.choose(new ExpressRouteRequest(req))
    if (choice instanceof Promise) choice.then(c => forward(c, req, res, next), next)
    else forward(choice, req, res, next)
  }) as AffinityMiddleware

  Object.defineProperty(middleware, 'balancer', { value: balancer, enumerable: true })
  middleware.upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => {})
    if (!routeThroughApp(app, req, socket, head)) {
      process.emitWarning('@affinity/express: lb.upgrade could not find the Express app; pass it as affinity({ app })', 'AffinityWarning')
      writeSocketError(socket, 'misconfigured')
    }
  }
  middleware.metrics = (): MetricsHandler => {
    if (metricsOpts === false) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'metrics', 'metrics are off (`metrics: false`)')
    const ready = startMetrics()
    return (req, res, next) => {
      ready.then(async m => writeAnswer(res, await metricsAnswer(m), req.method)).catch((err: unknown) => {
        if (next !== undefined) next(err)
        else if (!res.headersSent) { res.statusCode = 500; res.end() }
      })
    }
  }
  middleware.statusPage = (pageOpts?: StatusPageOptions): StatusPageHandler => {
    const page = createStatusPage(balancer, pageOpts)
    statusPages.add(page)
    return (req, res) => page.handle(req, res)
  }
  middleware.admin = (): AdminHandler => adminHandler(balancer)
  middleware.close = async (): Promise<void> => {
    for (const page of statusPages) page.close()
    if (metrics !== undefined) (await metrics.catch(() => undefined))?.close()
    await mount.close()
  }
  return middleware
}
