// The balancer of the failover storm (bench/storm.js forks it): Fastify with
// @affinity/fastify over the storm's upstreams, configured by the parent (with or
// without the overload limits). Reports over IPC: its port, each 'down' (epoch ms),
// and on request its stats() and CPU time.
import Fastify from 'fastify'
import affinity from '@affinity/fastify'
import { createBalancer, stickyCookie } from '@affinity/core'

let app
let balancer
process.on('message', async (m) => {
  if (m.start !== undefined) {
    const { upstreams, secret, factor, limits } = m.start
    balancer = createBalancer({
      upstreams,
      strategy: stickyCookie({ secret, sessionBalanceFactor: factor }),
      health: { path: '/health', intervalMs: 1000, timeoutMs: 500, fall: 2, rise: 2 },
      timeoutMs: 10_000,
      ...limits,
    })
    balancer.on('down', (u) => process.send({ down: u.id, at: Date.now() }))
    app = Fastify({ logger: false, keepAliveTimeout: 60_000 })
    await app.register(affinity, { prefix: '/api', balancer })
    await app.listen({ port: 0, host: '127.0.0.1' })
    process.send({ port: app.server.address().port })
  } else if (m === 'stats') {
    process.send({ stats: balancer.stats(), cpu: process.cpuUsage() })
  }
})
process.on('disconnect', () => process.exit(0))
