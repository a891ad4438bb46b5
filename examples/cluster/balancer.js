// What each worker runs: one balancer on the port every worker shares. The workers
// share nothing but their configuration, and still agree on every user:
// - stickyCookie: the cookie names its upstream by id, signed with the secret, so any
//   worker with the same secret honours a cookie another one issued;
// - consistentHash: every worker builds the same ring from the upstream ids.
// (stickyIp would not agree: each worker would have its own stick table. Give it a
// shared store, as shown in docs/operations.md, and it does.)
//   AFFINITY_SECRET  the cookie secret (the same on every worker, every machine)
//   UPSTREAMS        JSON [{ "id": "S1", "url": "http://…" }, …]
//   PORT, HOST       where the workers listen (port 0: one free port, shared)
import cluster from 'node:cluster'
import Fastify from 'fastify'
import affinity from '@affinity/fastify'
import { consistentHash, stickyCookie } from '@affinity/core'

const upstreams = JSON.parse(process.env.UPSTREAMS ?? '[]')
const secret = process.env.AFFINITY_SECRET

const app = Fastify({ logger: false })
// Which worker answered: for the walk-through only.
app.addHook('onRequest', async (_request, reply) => { reply.header('x-worker', String(cluster.worker?.id ?? 0)) })
await app.register(affinity, { prefix: '/cookie', upstreams, strategy: stickyCookie({ secret }) })
await app.register(affinity, { prefix: '/hash', upstreams, strategy: consistentHash({ key: { header: 'x-user-id' } }) })
await app.listen({ port: Number(process.env.PORT ?? 8080), host: process.env.HOST ?? '127.0.0.1' })

// Graceful stop: finish the requests in flight, close the balancers (built from the
// shorthand, so closed with the app), then leave the cluster.
let closing
function shutdown () {
  closing ??= app.close().then(() => process.disconnect?.())
  return closing
}
process.on('message', (m) => { if (m === 'shutdown') void shutdown() })
process.once('SIGTERM', () => { void shutdown() })
