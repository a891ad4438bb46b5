// Type-checked by scripts/pack-check.mjs (strict, NodeNext) against the installed tarballs:
// the declarations a TypeScript user gets from the registry, with the frameworks' current majors.
import Fastify from 'fastify'
import express from 'express'
import { Redis } from 'ioredis'
import {
  AffinityError, createBalancer, consistentHash, createMetrics, stickyCookie,
  type Balancer, type BalancerStats, type Choice, type Strategy, type UpstreamInfo,
} from '@affinity/core'
import affinity, { type AffinityFastifyOptions } from '@affinity/fastify'
import { affinity as affinityMiddleware, type AffinityMiddleware } from '@affinity/express'
import { redisStore, type RedisStickStore } from '@affinity/redis'

const strategy: Strategy = stickyCookie({ secret: 'a'.repeat(32), maxAge: 3600 })
const balancer: Balancer = createBalancer({
  upstreams: ['http://127.0.0.1:3001', { url: 'ws://127.0.0.1:3002', id: 'b', weight: 2 }],
  strategy,
  health: { path: '/health', intervalMs: 2000 },
})
const listed: UpstreamInfo[] = balancer.list()
const stats: BalancerStats = balancer.stats()
balancer.on('down', (upstream, reason) => { console.log(upstream.id, reason, listed.length, stats.picks) })

const app = Fastify()
const options: AffinityFastifyOptions = { prefix: '/api', balancer, websocket: true }
await app.register(affinity, options)
await app.register(affinity, { prefix: '/hashed', upstreams: ['http://127.0.0.1:3003'], strategy: consistentHash({ key: { header: 'x-user' } }) })
app.addHook('preHandler', async (request) => {
  const choice: Choice | null = request.affinity
  const id: string | undefined = choice?.upstream?.id
  if (id === undefined) request.log.debug('not proxied')
})

const lb: AffinityMiddleware = affinityMiddleware({ balancer })
const web = express()
web.use('/api', lb)
web.get('/lb/metrics', lb.metrics())
const server = web.listen(0)
server.on('upgrade', lb.upgrade)

const store: RedisStickStore = redisStore({ client: new Redis({ lazyConnect: true }), logger: app.log })
store.on('degraded', (err: Error) => { console.log(err.message) })

const metrics = await createMetrics(balancer)
console.log(metrics.contentType, await metrics.metrics())

try {
  createBalancer({ upstreams: [] })
} catch (err) {
  if (err instanceof AffinityError) console.log(err.code)
}

// @ts-expect-error an unknown option is a type error, not silently accepted
stickyCookie({ secret: 'a'.repeat(32), maxAgeSeconds: 60 })
// @ts-expect-error the plugin's options are typed
await app.register(affinity, { prefix: 1, balancer })
