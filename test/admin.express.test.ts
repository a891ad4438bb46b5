/**
 * The admin routes on @affinity/express: the shared table (test/adapters/admin.ts),
 * on Express 5 and 4, then a body parser mounted before lb.admin().
 */
import t from 'tap'
import express from 'express'
import express4 from 'express4'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { affinity } from '@affinity/express'
import { createBalancer, roundRobin } from '@affinity/core'
import { expressHarness } from './adapters/harness.js'
import { runAdminScenarios } from './adapters/admin.js'
import { request } from './helpers/http.js'
import { startUpstreams } from './helpers/upstreams.js'

runAdminScenarios(t, expressHarness())
runAdminScenarios(t, expressHarness(express4, 'express4'))

t.test('express: a body parser mounted before lb.admin() already read the body: what it parsed is used', async t => {
  const ups = await startUpstreams(2)
  const balancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: roundRobin() })
  const lb = affinity({ balancer })
  t.teardown(async () => { await lb.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  const app = express()
  app.use(express.json())
  app.use(express.text())
  app.use('/admin', lb.admin())
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin`
  const json = await request(`${base}/weight/S1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"weight":6}' })
  t.equal(json.status, 200, 'express.json() parsed it')
  t.equal(balancer.list()[0]!.weight, 6)
  const text = await request(`${base}/weight/S2`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"weight":7}' })
  t.equal(text.status, 200, 'express.text() read it as a string')
  t.equal(balancer.list()[1]!.weight, 7)
})
