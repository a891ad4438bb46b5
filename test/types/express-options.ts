// Compile-only type test (checked by `tsc -b`, never run): the README's Express snippet
// type-checks with Express 5's own types, and wrong options do not.
import express from 'express'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { affinity, type AffinityExpressMetricsOptions, type AffinityMiddleware, type MetricsHandler, type StatusPageHandler } from '@affinity/express'
import { createBalancer, ipHash, type AffinityLogger, type Balancer } from '@affinity/core'

export async function typeTests (): Promise<void> {
  const balancer = createBalancer({ upstreams: ['http://127.0.0.1:3001'], strategy: ipHash({ ipv4Prefix: 24 }) })
  const lb: AffinityMiddleware = affinity({ balancer })
  const app = express()
  app.set('trust proxy', 'loopback')
  app.use('/api', lb)
  app.use('/hash', affinity({ upstreams: ['http://127.0.0.1:3001'], retries: 2, timeoutMs: 5000, app }))
  const server = app.listen(8080)
  server.on('upgrade', lb.upgrade)
  const requireAuth: express.RequestHandler = (req, res, next) => { if (req.headers.authorization === undefined) res.sendStatus(401); else next() }
  const page: StatusPageHandler = lb.statusPage({ showUrls: false, intervalMs: 5000, windowMs: 15 * 60_000 })
  app.get('/lb-status', requireAuth, page)
  app.get('/lb-status-defaults', requireAuth, lb.statusPage())
  // @ts-expect-error windowMs is in milliseconds, a number
  lb.statusPage({ windowMs: '15m' })
  // @ts-expect-error the route is where you mount the handler, not an option
  lb.statusPage({ route: '/lb-status' })
  const same: Balancer = lb.balancer
  void same
  await lb.close()

  // Metrics: a handler for a route of yours, your own registry; a pino-like logger.
  const scrape: MetricsHandler = lb.metrics()
  app.get('/metrics', scrape)
  const metrics: AffinityExpressMetricsOptions = { registry: new Registry() }
  const logger: AffinityLogger = Fastify().log
  const observed = affinity({ balancer, metrics, logger })
  app.get('/lb-metrics', observed.metrics())
  affinity({ balancer, metrics: true, logger: { debug () {}, info () {}, warn () {} } })

  // @ts-expect-error upstreams are URL strings or { url, id, weight }
  affinity({ upstreams: [8080] })
  // @ts-expect-error timeoutMs is in milliseconds, a number
  affinity({ balancer, timeoutMs: '5s' })
  // @ts-expect-error the balancer is read-only
  lb.balancer = balancer
  // @ts-expect-error metrics.registry is a prom-client Registry
  affinity({ balancer, metrics: { registry: 'default' } })
  // @ts-expect-error a logger has pino's debug, info and warn
  affinity({ balancer, logger: { info () {} } })
  // @ts-expect-error lb.metrics() takes no options (they go to affinity({ metrics }))
  lb.metrics({ registry: new Registry() })
}
