/**
 * The admin routes on @affinity/fastify: the shared table (test/adapters/admin.ts),
 * then what only the plugin has: its `admin` option and the prefix.
 */
import t from 'tap'
import Fastify from 'fastify'
import affinity from '@affinity/fastify'
import { createBalancer, roundRobin } from '@affinity/core'
import { fastifyHarness } from './adapters/harness.js'
import { runAdminScenarios } from './adapters/admin.js'
import { request } from './helpers/http.js'
import { startUpstreams } from './helpers/upstreams.js'

runAdminScenarios(t, fastifyHarness())

t.test('fastify: the admin option is checked; its route sits below the prefix and answers every method itself', async t => {
  const ups = await startUpstreams(2)
  const balancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: roundRobin() })
  t.teardown(async () => { await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  for (const [admin, code] of [
    [{ path: '/x' }, 'AFFINITY_ERR_UNKNOWN_OPTION'],
    [{ route: 'admin' }, 'AFFINITY_ERR_INVALID_OPTION'],
    [{ route: '/' }, 'AFFINITY_ERR_INVALID_OPTION'],
    [{ route: '/admin/' }, 'AFFINITY_ERR_INVALID_OPTION'],
    ['yes', 'AFFINITY_ERR_INVALID_OPTION'],
  ] as const) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(affinity, { balancer, admin: admin as never }).ready() }, { code }, JSON.stringify(admin))
    await app.close()
  }

  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(affinity, { prefix: '/api', balancer, admin: { route: '/ops' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  t.equal((await request(`${base}/api/ops`)).json().upstreams.length, 2, 'GET /api/ops')
  t.equal((await request(`${base}/ops`)).status, 404, 'not outside the prefix')
  for (const method of ['PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    t.equal((await request(`${base}/api/ops/drain/S1`, { method })).status, 405, `${method} below the admin route is answered, never proxied`)
  }
  t.same(ups.map(u => u.seen.length), [0, 0])
  t.equal((await request(`${base}/api/elsewhere`)).status, 200, 'the rest of the prefix is proxied')
})
