// One balancer instance, as you would deploy it several times behind DNS or an L4
// load balancer: a Fastify app with two Affinity mounts, configured from the
// environment. Nothing is shared between instances but the configuration:
//   AFFINITY_SECRET  the cookie secret (the same on every instance)
//   UPSTREAMS        JSON [{ "id": "S1", "url": "http://…" }, …] (same ids, any order)
//   INSTANCE         a name, sent back in the X-Balancer header
//   PORT             where to listen on 127.0.0.1 (0: any free port)
// Started by index.js with child_process.fork(); also runs on its own:
//   AFFINITY_SECRET=… UPSTREAMS='[…]' PORT=8080 node examples/multi-instance/balancer.js
import Fastify from 'fastify'
import affinity from '@affinity/fastify'
import { consistentHash, stickyCookie } from '@affinity/core'

const upstreams = JSON.parse(process.env.UPSTREAMS ?? '[]')
const secret = process.env.AFFINITY_SECRET
const instance = process.env.INSTANCE ?? 'balancer'

const app = Fastify({ logger: false })
// Headers set before the proxy go out with the proxied response.
app.addHook('onRequest', async (_request, reply) => { reply.header('x-balancer', instance) })

// Sticky sessions by cookie: the cookie names its upstream by id (opaquely, signed with
// the secret), so any instance with the same secret and ids honours it.
await app.register(affinity, { prefix: '/cookie', upstreams, strategy: stickyCookie({ secret }) })
// Consistent hashing on a user id: each upstream's place on the ring comes from its id,
// never from its position in the list, so every instance computes the same ring.
await app.register(affinity, { prefix: '/hash', upstreams, strategy: consistentHash({ key: { header: 'x-user-id' } }) })

await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
const port = app.server.address().port

let closing
function shutdown () {
  closing ??= app.close().then(() => { if (process.connected) process.disconnect() })
  return closing
}
if (process.send !== undefined) {
  // Forked by index.js: report the port, close when told to or when the parent goes away.
  process.send({ ready: true, instance, port })
  process.on('message', (m) => { if (m === 'close') void shutdown() })
  process.on('disconnect', () => { void shutdown() })
} else {
  console.log(`${instance} listening on http://127.0.0.1:${port}`)
}
process.once('SIGTERM', () => { void shutdown() })
process.once('SIGINT', () => { void shutdown() })
