import {
  AffinityError, balancerFrom, createMetrics, createStatusPage, logStateChanges, writeSocketError,
  type AffinityLogger, type AffinityMetrics, type Balancer, type BalancerSource, type Choice, type MetricsRegistry, type StatusPage, type StatusPageOptions,
} from '@affinity/core'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { BodyConsumedError, forwardableBody } from './body.js'
import { ExpressRouteRequest, type ExpressRequest } from './route-request.js'
import { kUpgrade, routeUpgrade, type ExpressApp, type UpgradeRequest } from './upgrade.js'

export interface AffinityExpressOptions extends BalancerSource {
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

/**
 * Affinity as Express middleware (Express 5, and 4): `app.use('/api', affinity({...}))`.
 * Forwards through the core's undici forwarder; the upstream sees the path below
 * the mount (req.url).
 */
export function affinity (opts: AffinityExpressOptions): AffinityMiddleware {
  const { app, metrics: metricsOpts, logger, ...source } = opts
  const { balancer, owned } = balancerFrom(source)
  const tunnels = new Set<Duplex>()
  const statusPages = new Set<StatusPage>()
  const stopLogging = logger === undefined ? undefined : logStateChanges(balancer, logger)
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

  const forward = (choice: Choice, req: ExpressRequest, res: ServerResponse, next: Next): void => {
    const pending = (req as UpgradeRequest)[kUpgrade]
    if (pending !== undefined) {
      tunnels.add(pending.socket)
      pending.socket.once('close', () => tunnels.delete(pending.socket))
      balancer.upgrade(choice, req, pending.socket, pending.head, originForm(req.url))
      return
    }
    const body = forwardableBody(req)
    if (body instanceof BodyConsumedError) {
      next(body)
      return
    }
    balancer.forward(choice, req, res, {
      path: originForm(req.url),
      body,
      // Headers earlier middleware set (CORS, security headers) go out with the answer.
      responseHeaders: res.getHeaders() as Record<string, string | string[] | number | undefined>,
    })
  }

  const decided = logger === undefined
    ? forward
    : (choice: Choice, req: ExpressRequest, res: ServerResponse, next: Next): void => {
        // As Fastify: the object is built only when the logger says debug is on.
        if (logger.isLevelEnabled?.('debug') ?? true) {
          logger.debug({ upstream: choice.upstream?.id, reason: choice.reason, cookie: choice.setCookie !== undefined, method: req.method, url: req.originalUrl ?? req.url }, 'affinity: upstream chosen')
        }
        forward(choice, req, res, next)
      }

  const middleware = ((req: ExpressRequest, res: ServerResponse, next: Next): void => {
    const choice = balancer.choose(new ExpressRouteRequest(req))
    if (choice instanceof Promise) choice.then(c => decided(c, req, res, next), next)
    else decided(choice, req, res, next)
  }) as AffinityMiddleware

  Object.defineProperty(middleware, 'balancer', { value: balancer, enumerable: true })
  middleware.upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => {})
    if (!routeUpgrade(app, req, socket, head)) {
      process.emitWarning('@affinity/express: lb.upgrade could not find the Express app; pass it as affinity({ app })', 'AffinityWarning')
      writeSocketError(socket, 'misconfigured')
    }
  }
  middleware.metrics = (): MetricsHandler => {
    if (metricsOpts === false) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'metrics', 'metrics are off (`metrics: false`)')
    const ready = startMetrics()
    return (_req, res, next) => {
      ready.then(async m => {
        const text = await m.metrics()
        res.statusCode = 200
        res.setHeader('content-type', m.contentType)
        res.end(text)
      }).catch((err: unknown) => {
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
  middleware.close = async (): Promise<void> => {
    for (const socket of tunnels) socket.destroy()
    for (const page of statusPages) page.close()
    stopLogging?.()
    if (metrics !== undefined) (await metrics.catch(() => undefined))?.close()
    if (owned) await balancer.close()
  }
  return middleware
}
