// Compile-only type test (checked by `tsc -b` through test/tsconfig.json, never run):
// what a Fastify user writes must type-check, and wrong options must not.
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import affinity, { type AffinityFastifyMetricsOptions, type AffinityFastifyOptions, type AffinityFastifyStatusPageOptions } from '@affinity/fastify'
import { createBalancer, stickyCookie, consistentHash, roundRobin, type Choice } from '@affinity/core'

export async function typeTests (): Promise<void> {
  const app = Fastify({ trustProxy: false })
  const balancer = createBalancer({
    upstreams: ['http://127.0.0.1:3001', { url: 'http://127.0.0.1:3002', id: 'b', weight: 2 }],
    strategy: stickyCookie({ secret: 'x'.repeat(32) }),
  })

  // The README's snippet.
  await app.register(affinity, { prefix: '/api', rewritePrefix: '', balancer, websocket: true })
  // The shorthand.
  await app.register(affinity, {
    prefix: '/hash',
    upstreams: ['http://127.0.0.1:3001'],
    strategy: consistentHash({ key: { header: 'x-user-id' }, algorithm: 'maglev' }),
    health: { path: '/health', intervalMs: 2000 },
    passive: { failures: 3, cooldownMs: 10_000 },
    retries: 1,
    timeoutMs: 60_000,
  })
  const opts: AffinityFastifyOptions = { upstreams: ['http://127.0.0.1:3001'], strategy: roundRobin() }
  await app.register(affinity, opts)

  // The decision is typed on the request.
  app.addHook('onResponse', async (request) => {
    const choice: Choice | null = request.affinity
    const id: string | undefined = choice?.upstream?.id
    void id
  })

  // The status page: on with defaults, or placed and guarded.
  await app.register(affinity, { prefix: '/shop', balancer, statusPage: true })
  const statusPage: AffinityFastifyStatusPageOptions = {
    route: '/_lb/status',
    showUrls: false,
    intervalMs: 5000,
    windowMs: 15 * 60_000,
    onRequest: async (request, reply) => { if (request.headers.authorization === undefined) await reply.code(401).send() },
  }
  await app.register(affinity, { prefix: '/cart', balancer, statusPage })
  await app.register(affinity, { prefix: '/off', balancer, statusPage: false })

  // Metrics: on at <prefix>/metrics, or a route and your own registry.
  await app.register(affinity, { prefix: '/m', balancer, metrics: true })
  const metrics: AffinityFastifyMetricsOptions = { route: '/_lb/metrics', registry: new Registry() }
  await app.register(affinity, { prefix: '/n', balancer, metrics })

  // Wrong options do not type-check.
  // @ts-expect-error metrics is a boolean or { route, registry }
  await app.register(affinity, { balancer, metrics: 'on' })
  // @ts-expect-error metrics.route is a path
  await app.register(affinity, { balancer, metrics: { route: 9090 } })
  // @ts-expect-error metrics.registry is a prom-client Registry
  await app.register(affinity, { balancer, metrics: { registry: {} } })
  // @ts-expect-error statusPage is a boolean or options
  await app.register(affinity, { balancer, statusPage: 'on' })
  // @ts-expect-error intervalMs is in milliseconds, a number
  await app.register(affinity, { balancer, statusPage: { intervalMs: '5s' } })
  // @ts-expect-error showUrls is a boolean
  await app.register(affinity, { balancer, statusPage: { showUrls: 'yes' } })
  // @ts-expect-error websocket is a boolean
  await app.register(affinity, { balancer, websocket: 'yes' })
  // @ts-expect-error retries is a number
  await app.register(affinity, { upstreams: ['http://127.0.0.1:3001'], retries: '1' })
  // @ts-expect-error an upstream is a URL string or { url, id, weight }
  await app.register(affinity, { upstreams: [{ host: '127.0.0.1' }] })
  // @ts-expect-error the balancer must be a Balancer
  await app.register(affinity, { balancer: {} })
  // @ts-expect-error a strategy is required to be a Strategy object, not its name
  await app.register(affinity, { upstreams: ['http://127.0.0.1:3001'], strategy: 'roundRobin' })
  // @ts-expect-error stickyCookie needs a secret
  stickyCookie({ maxAge: 60 })
}
