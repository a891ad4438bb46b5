// The balancer pods: Fastify + @affinity/fastify with a stickyCookie strategy over the
// app pods, found by DNS on the app's headless Service (one A record per ready pod,
// ids address:port, the same on every replica). A pod that leaves DNS is drained, not
// dropped: its bound users keep reaching it while it still serves. Operator state
// (drain, weight) is shared by the replicas through Redis (redisControl): a drain on
// one replica, an admin call or `affinity drain` reaches all of them, and a replica
// that starts later starts from it. The admin routes are guarded by a bearer token.
import { timingSafeEqual } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import affinity from '@affinity/fastify'
import { createBalancer, dnsDiscovery, stickyCookie } from '@affinity/core'
import { redisControl } from '@affinity/redis'

/** Every environment variable this file reads, with its default (undefined: required). */
export const ENV = {
  PORT: '8080',
  /** This replica in `affinity status` (downward API: metadata.name). */
  POD_NAME: undefined,
  /** The app's headless Service, fully qualified (node's resolver does not apply search domains). */
  APP_DNS_NAME: undefined,
  APP_PORT: '8080',
  /** Signs the sticky cookie: the same on every replica, so any replica honours any cookie. */
  AFFINITY_SECRET: undefined,
  ADMIN_TOKEN: undefined,
  REDIS_URL: 'redis://redis:6379',
  CONTROL_NAME: 'shop',
  DNS_INTERVAL_MS: '5000',
  /** Resolvers to ask, host:port, comma-separated (default '': the system's, i.e. the cluster DNS). */
  DNS_SERVERS: '',
  /** A pod gone from DNS is drained, and removed once idle or at the latest after this. */
  REMOVE_GRACE_MS: '150000',
  /** A drain completes once no bound user has come back for this long (and nothing is in flight). */
  DRAIN_IDLE_MS: '30000',
  /** A new pod's share of new users ramps up over this long. */
  SLOW_START_MS: '30000',
  LOG_LEVEL: 'info',
}

/** The admin routes (prestop.js calls POST …/drain/:id?wait=1 here). */
export const ADMIN_ROUTE = '/affinity/admin'
/** The readiness probe's path: answered once the first membership is known and the control attached. */
export const READY_PATH = '/affinity/ready'

/** The environment, defaults applied; a missing required variable is an error at start-up. */
export function config (env = process.env) {
  const c = {}
  for (const [name, fallback] of Object.entries(ENV)) {
    c[name] = env[name] ?? fallback
    if (c[name] === undefined) throw new Error(`${name} is not set`)
  }
  return c
}

/** `onRequest` guard for the admin routes: `authorization: Bearer <ADMIN_TOKEN>`. */
function bearer (token) {
  const expected = Buffer.from(`Bearer ${token}`)
  return (request, reply, done) => {
    const got = Buffer.from(request.headers.authorization ?? '')
    if (got.length === expected.length && timingSafeEqual(got, expected)) done()
    else reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'admin token required' })
  }
}

export async function start (env = process.env) {
  const c = config(env)
  const balancer = createBalancer({
    upstreams: dnsDiscovery({
      name: c.APP_DNS_NAME,
      port: Number(c.APP_PORT),
      protocol: 'http',
      intervalMs: Number(c.DNS_INTERVAL_MS),
      ...(c.DNS_SERVERS === '' ? {} : { servers: c.DNS_SERVERS.split(',') }),
    }),
    strategy: stickyCookie({ secret: c.AFFINITY_SECRET }),
    slowStartMs: Number(c.SLOW_START_MS),
    removeGraceMs: Number(c.REMOVE_GRACE_MS),
    drainIdleMs: Number(c.DRAIN_IDLE_MS),
  })
  const redis = new Redis(c.REDIS_URL)
  redis.on('error', err => console.error(`redis: ${err.message}`))
  const control = redisControl({ client: redis, name: c.CONTROL_NAME, id: c.POD_NAME })
  await balancer.ready()
  await control.attach(balancer)

  const app = Fastify({ logger: { level: c.LOG_LEVEL } })
  app.get(READY_PATH, async () => ({ ready: true }))
  await app.register(affinity, { balancer, admin: { route: ADMIN_ROUTE, onRequest: bearer(c.ADMIN_TOKEN) } })
  await app.listen({ port: Number(c.PORT), host: '0.0.0.0' })

  return {
    app,
    balancer,
    control,
    async close () {
      await app.close() // stops accepting, waits for requests in flight
      await control.close()
      await balancer.close()
      redis.disconnect()
    },
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const lb = await start()
  process.once('SIGTERM', () => { void lb.close().then(() => process.exit(0)) })
}
