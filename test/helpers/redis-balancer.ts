/**
 * One balancer instance in its own process, forked by forkBalancer() in
 * test/helpers/redis.ts: stickyIp over a Redis stick table, behind Fastify.
 *   REDIS_PORT  the Redis server on 127.0.0.1
 *   UPSTREAMS   JSON [{ "id": "S1", "url": "http://…" }, …]
 * Reports { port } once listening; answers 'stats' with { stats }; 'close' (or the
 * parent going away) shuts it down.
 */
import { startRedisBalancer } from './redis.js'

const lb = await startRedisBalancer(undefined, {
  redisPort: Number(process.env.REDIS_PORT),
  upstreams: JSON.parse(process.env.UPSTREAMS ?? '[]') as Array<{ id: string, url: string }>,
})

let closing: Promise<void> | undefined
function shutdown (): Promise<void> {
  closing ??= lb.close().then(() => { if (process.connected) process.disconnect() })
  return closing
}

process.on('message', (m) => {
  if (m === 'stats') process.send!({ stats: lb.store.stats() })
  if (m === 'close') void shutdown()
})
process.on('disconnect', () => { void shutdown() })
process.send!({ port: Number(new URL(lb.url).port) })
