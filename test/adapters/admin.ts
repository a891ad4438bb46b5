/**
 * The admin routes on both adapters (test/admin.fastify.test.ts and
 * test/admin.express.test.ts run this table): off by default, the user's guard
 * refusing an unauthenticated request, the list, drain / undrain / weight with the
 * body read by the route itself, `?wait=1` (examples/drain-prestop's contract),
 * ids that need percent-encoding, and every wrong request answered with JSON.
 */
import http from 'node:http'
import type { Test } from 'tap'
import { createBalancer, roundRobin, type Balancer } from '@affinity/core'
import type { AdapterHarness } from './harness.js'
import { assertJsonError } from './scenarios.js'
import { request, until, type RawResponse } from '../helpers/http.js'
import { startUpstreams, type TestUpstream } from '../helpers/upstreams.js'

export interface AdminScenario {
  name: string
  run (t: Test, h: AdapterHarness): Promise<void>
}

const TOKEN = 'admin-token'
const AUTH = { authorization: `Bearer ${TOKEN}` }

/** Three real upstreams with these ids and a caller-owned round-robin balancer over them, closed with the test. */
async function trio (t: Test, ids = ['S1', 'S2', 'S3']): Promise<{ ups: TestUpstream[], balancer: Balancer }> {
  const ups = await startUpstreams(3)
  const balancer = createBalancer({ upstreams: ups.map((u, i) => ({ url: u.url, id: ids[i]! })), strategy: roundRobin() })
  t.teardown(async () => { await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  return { ups, balancer }
}

const state = (b: Balancer, id: string): string | undefined => b.list().find(u => u.id === id)?.state
const post = (url: string, body?: string, headers: http.OutgoingHttpHeaders = {}): Promise<RawResponse> =>
  request(url, { method: 'POST', headers: { ...AUTH, ...headers }, ...(body === undefined ? {} : { body }) })

export const ADMIN_SCENARIOS: AdminScenario[] = [
  {
    name: 'admin: off by default; its path is proxied like any other',
    async run (t, h) {
      const { ups, balancer } = await trio(t)
      const app = await h.start(t, { source: { balancer } })
      const res = await request(`${app.base}/affinity/admin/drain/S1`, { method: 'POST' })
      t.equal(res.status, 200)
      t.match(res.json().name, /^S\d$/, 'an upstream answered')
      t.equal(ups.reduce((n, u) => n + u.seen.length, 0), 1)
      t.equal(state(balancer, 'S1'), 'up', 'nothing drained')
    },
  },

  {
    name: 'admin: the user\'s guard refuses an unauthenticated request before the route (nothing changes, nothing proxied)',
    async run (t, h) {
      const { ups, balancer } = await trio(t)
      const app = await h.start(t, { source: { balancer }, admin: { token: TOKEN } })
      for (const [method, path] of [['GET', ''], ['POST', '/drain/S1'], ['POST', '/weight/S1']] as const) {
        const res = await request(`${app.base}/affinity/admin${path}`, { method, headers: { authorization: 'Bearer wrong' }, ...(method === 'POST' ? { body: '{"weight":9}' } : {}) })
        t.equal(res.status, 401, `${method} ${path || '/'} without the token`)
        t.same(res.json(), { error: 'unauthorized' })
      }
      t.same(balancer.list().map(u => [u.state, u.weight]), [['up', 1], ['up', 1], ['up', 1]], 'nothing changed')
      t.same(ups.map(u => u.seen.length), [0, 0, 0], 'nothing reached an upstream')
      t.equal((await request(`${app.base}/affinity/admin`, { headers: AUTH })).status, 200, 'with it: answered')
    },
  },

  {
    name: 'admin: GET lists the upstreams; drain (202), undrain and weight change them; the body is read by the route whatever its type',
    async run (t, h) {
      const { ups, balancer } = await trio(t)
      const app = await h.start(t, { source: { balancer }, admin: { token: TOKEN } })
      const admin = `${app.base}/affinity/admin`
      const list = await request(admin, { headers: AUTH })
      t.equal(list.status, 200)
      t.match(String(list.headers['content-type']), /^application\/json/)
      t.equal(list.headers['cache-control'], 'no-store')
      t.same(list.json(), { upstreams: ups.map((u, i) => ({ id: `S${i + 1}`, url: u.url, weight: 1, state: 'up', inFlight: 0, websockets: 0, requests: 0, failures: 0, ejections: 0 })) }, 'every upstream (boundUsers: none for round robin)')
      const slash = await request(`${admin}/`, { headers: AUTH })
      t.same(slash.json(), list.json(), 'with a trailing slash too')
      const head = await request(admin, { method: 'HEAD', headers: AUTH })
      t.equal(head.status, 200)
      t.equal(head.body.length, 0, 'HEAD: no body')

      const drained = await post(`${admin}/drain/S2`)
      t.equal(drained.status, 202, 'drain answers at once: the drain is under way')
      t.match(drained.json(), { id: 'S2', drained: false, upstream: { id: 'S2', state: 'draining' } })
      t.equal(state(balancer, 'S2'), 'draining')
      t.equal((await post(`${admin}/drain/S2`)).status, 202, 'draining again is harmless')
      const undrained = await post(`${admin}/undrain/S2`)
      t.equal(undrained.status, 200)
      t.match(undrained.json(), { id: 'S2', upstream: { state: 'up' } })
      t.equal(state(balancer, 'S2'), 'up')

      for (const [type, weight] of [['application/json', 3], ['text/plain', 4], [undefined, 5]] as const) {
        const res = await post(`${admin}/weight/S1`, JSON.stringify({ weight }), type === undefined ? {} : { 'content-type': type })
        t.equal(res.status, 200, `content-type ${type ?? 'none'}`)
        t.match(res.json(), { id: 'S1', upstream: { weight } })
        t.equal(balancer.list()[0]!.weight, weight)
      }
      t.same(ups.map(u => u.seen.length), [0, 0, 0], 'no admin request reached an upstream')
    },
  },

  {
    name: 'admin: wrong requests get JSON answers: unknown id 404, wrong method 405, bad body 400, too large 413, unknown query 400',
    async run (t, h) {
      const { ups, balancer } = await trio(t)
      const app = await h.start(t, { source: { balancer }, admin: { token: TOKEN } })
      const admin = `${app.base}/affinity/admin`
      const cases: Array<[string, string, string | undefined, number, RegExp]> = [
        ['POST', '/drain/S9', undefined, 404, /no upstream with id "S9"/],
        ['POST', '/weight/S9', '{"weight":2}', 404, /no upstream with id "S9"/],
        ['POST', '/drain/', undefined, 404, /no upstream with id ""/],
        ['GET', '/drain/S1', undefined, 405, /GET is not allowed on \/drain\/:id: use POST/],
        ['PUT', '/weight/S1', '{"weight":2}', 405, /use POST/],
        ['DELETE', '', undefined, 405, /DELETE is not allowed here/],
        ['POST', '', undefined, 405, /POST is not allowed here/],
        ['GET', '/frobnicate', undefined, 404, /no admin route \/frobnicate/],
        ['POST', '/weight/S1', undefined, 400, /expected a JSON body/],
        ['POST', '/weight/S1', 'weight=2', 400, /the body is not JSON/],
        ['POST', '/weight/S1', '[2]', 400, /expected a JSON body \{"weight": n\}/],
        ['POST', '/weight/S1', '{"weight":"2"}', 400, /with a number n > 0/],
        ['POST', '/weight/S1', '{"weight":0}', 400, /weights must be finite numbers > 0/],
        ['POST', '/weight/S1', '{"weight":2,"id":"S2"}', 400, /unknown field "id"/],
        ['POST', '/weight/S1', JSON.stringify({ weight: 2, pad: 'x'.repeat(2000) }), 413, /larger than 1024 bytes/],
        ['POST', '/drain/S1?wait=maybe', undefined, 400, /wait: expected 1 or 0/],
        ['POST', '/drain/S1?timeoutMs=5', undefined, 400, /timeoutMs .* needs wait=1/],
        ['POST', '/drain/S1?idleMs=-1', undefined, 400, /idleMs: expected milliseconds ≥ 0/],
        ['POST', '/drain/S1?force=1', undefined, 400, /unknown query parameter "force": the parameters are wait, idleMs, timeoutMs/],
        ['POST', '/undrain/S1?x=1', undefined, 400, /unknown query parameter "x": this route takes none/],
      ]
      for (const [method, path, body, status, message] of cases) {
        const res = await request(`${admin}${path}`, { method, headers: AUTH, ...(body === undefined ? {} : { body }) })
        t.test(`${method} ${path || '/'}`, async t => {
          assertJsonError(t, res, status, http.STATUS_CODES[status]!)
          t.match(res.json().message, message)
          if (status === 405) t.ok(res.headers.allow, `Allow: ${res.headers.allow}`)
        })
      }
      t.same(balancer.list().map(u => [u.state, u.weight]), [['up', 1], ['up', 1], ['up', 1]], 'nothing changed')
      t.same(ups.map(u => u.seen.length), [0, 0, 0], 'nothing proxied')
      const after = await request(`${admin}`, { headers: AUTH })
      t.equal(after.status, 200, 'the admin routes still answer after a 413')
    },
  },

  {
    name: 'admin: ids that need percent-encoding (URLs, IPv6 address:port, spaces, slashes, non-ASCII) are drained by their encoded form',
    async run (t, h) {
      const ids = ['http://10.0.0.1:8080/a b', '[fd00::1]:8080', 'ü/%25?#']
      const { balancer } = await trio(t, ids)
      const app = await h.start(t, { source: { balancer }, admin: { token: TOKEN } })
      for (const id of ids) {
        const res = await post(`${app.base}/affinity/admin/drain/${encodeURIComponent(id)}`)
        t.equal(res.status, 202, id)
        t.equal(res.json().id, id, 'the decoded id')
        t.equal(state(balancer, id), 'draining')
        const w = await post(`${app.base}/affinity/admin/weight/${encodeURIComponent(id)}`, '{"weight":2}')
        t.equal(w.json().upstream.weight, 2)
      }
      const bad = await request(`${app.base}/affinity/admin/drain/%E0%A4%A`, { method: 'POST', headers: AUTH })
      t.equal(bad.status, 400, 'malformed percent-encoding: 400')
    },
  },

  {
    name: 'admin: ?wait=1 answers once drained (200), or 503 after timeoutMs, as the preStop hook of examples/drain-prestop expects',
    async run (t, h) {
      const { ups, balancer } = await trio(t)
      const app = await h.start(t, { source: { balancer }, admin: { token: TOKEN } })
      const admin = `${app.base}/affinity/admin`
      // A request held at S2: the balancer's other upstreams are drained while it is placed.
      void balancer.drain('S1')
      void balancer.drain('S3')
      const held = new AbortController()
      const hang = fetch(`${app.base}/hang`, { signal: held.signal }).catch(() => 'aborted')
      await until(() => ups[1]!.seen.some(s => s.url === '/hang'), 5000, 'the request to reach S2')
      balancer.undrain('S1')
      balancer.undrain('S3')

      const late = await post(`${admin}/drain/S2?wait=1&timeoutMs=150`)
      t.equal(late.status, 503, 'still in flight after timeoutMs')
      t.match(late.json(), { id: 'S2', drained: false })
      t.ok(late.json().waitedMs >= 150, `waited ${late.json().waitedMs} ms`)

      let answered = false
      const waiting = post(`${admin}/drain/S2?wait=1&idleMs=0`).then(res => { answered = true; return res })
      await until(() => balancer.list()[1]!.state === 'draining', 5000)
      t.notOk(answered, 'no answer while a request is in flight there')
      held.abort()
      await hang
      const res = await waiting
      t.equal(res.status, 200)
      t.match(res.json(), { id: 'S2', drained: true })
      t.type(res.json().waitedMs, 'number')
    },
  },
]

export function runAdminScenarios (t: Test, harness: AdapterHarness): void {
  for (const s of ADMIN_SCENARIOS) t.test(`${harness.name}: ${s.name}`, t => s.run(t, harness))
}
