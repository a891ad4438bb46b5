/**
 * The adapter kit's shared rules, held to both adapters: one debug rule for the
 * per-request decision line (a logger that cannot say whether debug is on gets
 * none: `logger: console` must not print an object per request), and unknown
 * options refused with a stable code instead of being ignored.
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import express from 'express'
import Fastify from 'fastify'
import affinityPlugin from '@affinity/fastify'
import { affinity } from '@affinity/express'
import { createBalancer, stickyCookie } from '@affinity/core'
import { SECRET_A, balancer, entries, upstreams } from './adapters/scenarios.js'
import { request } from './helpers/http.js'

/** console's shape: debug/info/warn and no isLevelEnabled; records every call. */
function consoleLike (): { calls: string[], debug (...a: unknown[]): void, info (...a: unknown[]): void, warn (...a: unknown[]): void, error (...a: unknown[]): void, fatal (...a: unknown[]): void, trace (...a: unknown[]): void, child (): unknown } {
  const calls: string[] = []
  const logger = {
    calls,
    debug: (..._a: unknown[]) => { calls.push('debug') },
    info: (..._a: unknown[]) => { calls.push('info') },
    warn: (..._a: unknown[]) => { calls.push('warn') },
    error: (..._a: unknown[]) => { calls.push('error') },
    fatal: (..._a: unknown[]) => { calls.push('fatal') },
    trace: (..._a: unknown[]) => { calls.push('trace') },
    child: () => logger,
  }
  return logger
}

t.test('a logger without isLevelEnabled is debug-off on both adapters', async t => {
  const ups = await upstreams(t, 2)

  const ex = consoleLike()
  const lb = affinity({ balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }), logger: ex })
  const app = express()
  app.use('/api', lb)
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => { await lb.close(); server.closeAllConnections(); server.close() })
  const exBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`
  for (let i = 0; i < 3; i++) t.equal((await request(`${exBase}/echo`)).status, 200)
  t.same(ex.calls.filter(c => c === 'debug'), [], 'express: no decision line per request')

  const fa = consoleLike()
  const f = Fastify({ loggerInstance: fa as never, disableRequestLogging: true })
  await f.register(affinityPlugin, { prefix: '/api', balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) })
  await f.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => f.close())
  const faBase = `http://127.0.0.1:${(f.server.address() as AddressInfo).port}/api`
  for (let i = 0; i < 3; i++) t.equal((await request(`${faBase}/echo`)).status, 200)
  t.same(fa.calls.filter(c => c === 'debug'), [], 'fastify: no decision line per request')
})

t.test('unknown options are refused with AFFINITY_ERR_UNKNOWN_OPTION, never ignored', async t => {
  const ups = await upstreams(t, 1)
  t.throws(() => createBalancer({ upstreams: entries(ups), strategey: stickyCookie({ secret: SECRET_A }) } as never), { code: 'AFFINITY_ERR_UNKNOWN_OPTION', message: /`strategey`/ })
  const b = balancer(t, { upstreams: entries(ups) })
  t.throws(() => affinity({ balancer: b, preHandler: () => {} } as never), { code: 'AFFINITY_ERR_UNKNOWN_OPTION', message: /`preHandler` for @affinity\/express/ })
  t.throws(() => affinity({ upstreams: entries(ups), timeoutMS: 5 } as never), { code: 'AFFINITY_ERR_UNKNOWN_OPTION' }, 'a misspelt balancer option in the shorthand')
  t.throws(() => affinity({ upstreams: entries(ups), timeout: 5 } as never), { code: 'AFFINITY_ERR_UNSUPPORTED_OPTION', message: /http-proxy-middleware's option `timeout`: use `timeoutMs`/ }, 'an http-proxy-middleware option says what to use instead')
  t.throws(() => affinity({ balancer: b, retries: 2 }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /not both \(`retries` given too\)/ }, 'a balancer and the shorthand together')
  const f = Fastify()
  t.teardown(() => f.close())
  await t.rejects(async () => { await f.register(affinityPlugin, { prefix: '/api', balancer: b, upsteam: 'http://x' } as never) }, { code: 'AFFINITY_ERR_UNKNOWN_OPTION', message: /`upsteam` for @affinity\/fastify/ })
})
