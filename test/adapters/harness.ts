/**
 * One interface over both adapters, so the shared scenario table (scenarios.ts)
 * runs the same cases against the Fastify plugin and the Express middleware, in
 * the spirit of Hono's adapter conformance suite. Each `start` builds a real app on
 * 127.0.0.1:0 with the proxy mounted under a prefix and registers its teardown
 * with the test; balancers passed in belong to the caller (the scenario), as the
 * docs/fastify.md and docs/express.md promise, and upstreams are the scenario's too.
 */
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { Http2Server } from 'node:http2'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type onRequestHookHandler } from 'fastify'
import express from 'express'
import affinityPlugin from '@affinity/fastify'
import { affinity as affinityMiddleware, type AffinityMiddleware } from '@affinity/express'
import type { BalancerSource, MetricsRegistry, ProxyOptions, StatusPageOptions } from '@affinity/core'

/** One proxy mounted at `prefix`. */
export interface Mount {
  /** The balancer (caller-owned) or the shorthand options (adapter-owned). */
  source: BalancerSource
  prefix: string
  /** Fastify only (Express has no rewritePrefix): harnesses that lack it throw. */
  rewritePrefix?: string
  /** Proxy WebSocket upgrades (default true). */
  websocket?: boolean
  /** Prometheus metrics served on GET `prefix` + '/metrics' (Fastify's option; Express's `lb.metrics()` there). */
  metrics?: { registry?: MetricsRegistry }
  /** The status page on GET `prefix` + `route` (Fastify's option; Express's `lb.statusPage()` there); off when absent. */
  statusPage?: StatusPageMount
  /** Options both adapters take under the same names (rewriteHeaders, onError, preserveHost…), passed as they are. */
  proxy?: ProxyOptions<any, any>
  /** The admin routes at `prefix` + `route` (Fastify's `admin` option; Express's `lb.admin()` mounted there); off when absent. */
  admin?: AdminMount
}

/**
 * Where the admin routes go below the prefix (default '/affinity/admin', as Fastify's)
 * and the user's guard: a request without `authorization: Bearer <token>` is refused
 * with 401 by a Fastify onRequest hook or an Express middleware mounted before them.
 */
export interface AdminMount {
  route?: string
  token?: string
}

/** Status page options plus where it goes below the prefix (default '/affinity/status', as Fastify's). */
export interface StatusPageMount extends StatusPageOptions {
  route?: string
}

export interface AppOptions<App> {
  /** The framework's trust-proxy setting (Fastify `trustProxy`, Express `trust proxy`); off by default. */
  trustProxy?: boolean
  /** App-level setup that runs before the proxy is mounted (hooks, auth middleware, body parsers…). */
  extraApp?: (app: App) => void | Promise<void>
  /** Setup that runs after the proxy is mounted (Express error handlers, other routes…). */
  afterMount?: (app: App) => void | Promise<void>
}

export interface StartOptions<App> extends AppOptions<App> {
  source: BalancerSource
  /** Mount point (default '/api'). */
  prefix?: string
  rewritePrefix?: string
  websocket?: boolean
  metrics?: { registry?: MetricsRegistry }
  statusPage?: StatusPageMount
  proxy?: ProxyOptions<any, any>
  admin?: AdminMount
}

export interface Started<App = unknown> {
  /** Origin of the app, e.g. http://127.0.0.1:40123. */
  url: string
  /** `url` + the prefix. */
  base: string
  app: App
  /** The listening server (node:http, or node:http2 for a Fastify `http2: true` app): tests wait on its connections. */
  server: Server | Http2Server
  close (): Promise<void>
}

export interface StartedMounts<App = unknown> {
  url: string
  /** `url` + each mount's prefix, in the order given. */
  bases: string[]
  app: App
  server: Server | Http2Server
  close (): Promise<void>
}

export interface AdapterHarness<App = any> {
  readonly name: string
  /** Whether `rewritePrefix` can be expressed (Fastify yes, Express no). */
  readonly supportsRewritePrefix: boolean
  /** One app with one proxy under `prefix`, torn down with `t`. */
  start (t: Test, opts: StartOptions<App>): Promise<Started<App>>
  /** One app with several independent proxies (one per mount), torn down with `t`. */
  startMounts (t: Test, mounts: Mount[], opts?: AppOptions<App>): Promise<StartedMounts<App>>
}

/** The user's guard as a Fastify route-level onRequest hook. */
function fastifyAdmin ({ route, token }: AdminMount): { route?: string, onRequest?: onRequestHookHandler } {
  const onRequest: onRequestHookHandler = (request, reply, done) => {
    if (request.headers.authorization === `Bearer ${token}`) done()
    else void reply.code(401).send({ error: 'unauthorized' })
  }
  return { ...(route === undefined ? {} : { route }), ...(token === undefined ? {} : { onRequest }) }
}

/** The user's guard as Express middleware mounted before lb.admin(). */
function expressGuard (token: string): express.RequestHandler {
  return (req, res, next) => {
    if (req.headers.authorization === `Bearer ${token}`) next()
    else res.status(401).json({ error: 'unauthorized' })
  }
}

function originOf (server: Server | Http2Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function single<App> (h: Pick<AdapterHarness<App>, 'startMounts'>): AdapterHarness<App>['start'] {
  return async (t, opts) => {
    const { source, prefix = '/api', rewritePrefix, websocket, metrics, statusPage, proxy, admin, ...appOpts } = opts
    const m = await h.startMounts(t, [{ source, prefix, rewritePrefix, websocket, metrics, statusPage, proxy, admin }], appOpts)
    return { url: m.url, base: m.bases[0]!, app: m.app, server: m.server, close: m.close }
  }
}

/**
 * Fastify: `app.register(affinity, { prefix, rewritePrefix, websocket, ...source })` per mount.
 * `{ http2: true }` makes an h2c app (node:http2; its instance is typed as HTTP/1's here).
 */
export function fastifyHarness (fastifyOptions: FastifyServerOptions & { http2?: boolean } = {}): AdapterHarness<FastifyInstance> {
  const h: Pick<AdapterHarness<FastifyInstance>, 'startMounts'> = {
    async startMounts (t, mounts, opts = {}) {
      const app = Fastify({ ...fastifyOptions, trustProxy: opts.trustProxy ?? false } as FastifyServerOptions)
      let closed = false
      const close = async (): Promise<void> => {
        if (closed) return
        closed = true
        const done = app.close()
        // Anything still open (a hanging request, a keep-alive socket) must not hold the teardown.
        // (An http2 server has no closeAllConnections: Fastify closes its sessions itself.)
        ;(app.server as Partial<Server>).closeAllConnections?.()
        await done
      }
      t.teardown(close)
      await opts.extraApp?.(app)
      for (const m of mounts) {
        await app.register(affinityPlugin, {
          prefix: m.prefix,
          ...(m.rewritePrefix !== undefined ? { rewritePrefix: m.rewritePrefix } : {}),
          websocket: m.websocket ?? true,
          ...(m.metrics !== undefined ? { metrics: m.metrics } : {}),
          ...(m.statusPage !== undefined ? { statusPage: m.statusPage } : {}),
          ...m.proxy,
          ...(m.admin !== undefined ? { admin: fastifyAdmin(m.admin) } : {}),
          ...m.source,
        })
      }
      await opts.afterMount?.(app)
      await app.listen({ port: 0, host: '127.0.0.1' })
      const url = originOf(app.server)
      return { url, bases: mounts.map(m => url + m.prefix), app, server: app.server, close }
    },
  }
  return { name: 'fastify', supportsRewritePrefix: true, startMounts: h.startMounts, start: single(h) }
}

/** The part of an Express app factory (5, or 4 through the `express4` alias) the harness uses. */
export type ExpressFactory = () => express.Express

/**
 * Express: `app.use(prefix, lb)` per mount and `server.on('upgrade', lb.upgrade)`
 * for each middleware, as the README shows for one (docs/express.md).
 */
export function expressHarness (factory: ExpressFactory = express, name = 'express'): AdapterHarness<express.Express> {
  const h: Pick<AdapterHarness<express.Express>, 'startMounts'> = {
    async startMounts (t, mounts, opts = {}) {
      const app = factory()
      app.set('trust proxy', opts.trustProxy ?? false)
      const lbs: AffinityMiddleware[] = []
      let server: Server | undefined
      let closed = false
      const close = async (): Promise<void> => {
        if (closed) return
        closed = true
        await Promise.all(lbs.map(lb => lb.close()))
        if (server !== undefined) {
          const s = server
          s.closeAllConnections()
          await new Promise<void>(resolve => s.close(() => resolve()))
        }
      }
      t.teardown(close)
      await opts.extraApp?.(app)
      for (const m of mounts) {
        if (m.rewritePrefix !== undefined) throw new Error('Express has no rewritePrefix')
        const lb = affinityMiddleware({ ...m.proxy, ...m.source, ...(m.metrics !== undefined ? { metrics: m.metrics } : {}) })
        lbs.push(lb)
        // The scrape route before the proxy, at the path Fastify's option gives it.
        if (m.metrics !== undefined) app.get(`${m.prefix}/metrics`, lb.metrics())
        if (m.statusPage !== undefined) {
          const { route = '/affinity/status', ...pageOpts } = m.statusPage
          app.get(`${m.prefix}${route}`, lb.statusPage(pageOpts))
        }
        if (m.admin !== undefined) {
          const { route = '/affinity/admin', token } = m.admin
          if (token === undefined) app.use(`${m.prefix}${route}`, lb.admin())
          else app.use(`${m.prefix}${route}`, expressGuard(token), lb.admin())
        }
        app.use(m.prefix, lb)
      }
      await opts.afterMount?.(app)
      server = app.listen(0, '127.0.0.1')
      await once(server, 'listening')
      for (const [i, lb] of lbs.entries()) if (mounts[i]!.websocket ?? true) server.on('upgrade', lb.upgrade)
      const url = originOf(server)
      return { url, bases: mounts.map(m => url + m.prefix), app, server, close }
    },
  }
  return { name, supportsRewritePrefix: false, startMounts: h.startMounts, start: single(h) }
}
