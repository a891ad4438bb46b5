import t, { type Test } from 'tap'
import express from 'express'
import Fastify from 'fastify'
import affinity from '@affinity/fastify'
import { affinity as affinityMiddleware } from '@affinity/express'
import { createBalancer, createStatusPage, roundRobin, type Balancer } from '@affinity/core'
import { chartGeometry, StatsHistory } from '@affinity/core/internal'
import { startCoreFront } from './helpers/core-front.js'
import { delay, request } from './helpers/http.js'
import { startUpstreams } from './helpers/upstreams.js'

/** The status page's parts on their own: the sampler, the chart scale, options, and its lifecycle in each adapter. */

async function trio (t: Test): Promise<{ balancer: Balancer, urls: string[] }> {
  const ups = await startUpstreams(3)
  const balancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: roundRobin() })
  t.teardown(async () => { await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  return { balancer, urls: ups.map(u => u.url) }
}

t.test('history: a fixed ring of windowMs / intervalMs samples, oldest first; rates per upstream since the previous sample', async t => {
  const { balancer, urls } = await trio(t)
  const front = await startCoreFront(balancer)
  t.teardown(() => front.close())
  const history = new StatsHistory(balancer, { intervalMs: 100, windowMs: 300 })
  history.sample()
  t.same(history.samples(), [], 'the first reading is only the baseline')
  for (let i = 0; i < 6; i++) t.equal((await request(`${front.url}/echo`)).status, 200)
  await delay(20)
  history.sample()
  const [first] = history.samples()
  t.same([...first!.upstreams.keys()], ['S1', 'S2', 'S3'], 'every upstream in a sample')
  for (const s of first!.upstreams.values()) {
    t.ok(s.rps > 0, 'two requests each over the interval: a positive rate')
    t.equal(s.inFlight, 0, 'nothing in flight')
    t.equal(s.boundUsers, undefined, 'round robin binds nobody')
  }
  for (let i = 0; i < 4; i++) { await delay(5); history.sample() }
  const all = history.samples()
  t.equal(all.length, 3, 'three kept: the ring holds windowMs / intervalMs')
  t.ok(all.every((s, i) => i === 0 || s.at >= all[i - 1]!.at), 'oldest first')
  t.ok(all.every(s => [...s.upstreams.values()].every(u => u.rps === 0)), 'no traffic since: 0 requests/s')
  t.same(history.samples(Date.now() + 10_000), [], 'samples older than the window are not returned')

  // An upstream removed and added again counts from 0: never a negative rate.
  balancer.remove('S1')
  balancer.add({ url: urls[0]!, id: 'S1' })
  await request(`${front.url}/echo`)
  history.sample()
  t.ok([...history.samples().at(-1)!.upstreams.values()].every(u => u.rps >= 0), 'no negative rate after a re-add')
})

t.test('history and status page options are checked', async t => {
  const { balancer } = await trio(t)
  const invalid = { code: 'AFFINITY_ERR_INVALID_OPTION' }
  t.throws(() => new StatsHistory(balancer, { intervalMs: 10 }), invalid, 'intervalMs below 100 ms')
  t.throws(() => new StatsHistory(balancer, { intervalMs: 1000, windowMs: 500 }), invalid, 'a window shorter than the interval')
  t.throws(() => new StatsHistory(balancer, { intervalMs: 100, windowMs: 24 * 3600_000 }), invalid, 'more than 10,000 samples')
  t.throws(() => new StatsHistory(balancer, { intervalMs: '5s' as unknown as number }), invalid, 'intervalMs is a number')
  t.throws(() => createStatusPage(balancer, { showUrls: 'yes' as unknown as boolean }), invalid, 'showUrls is a boolean')
  t.throws(() => createStatusPage({} as Balancer), invalid, 'a balancer from createBalancer()')
  t.throws(() => affinityMiddleware({ balancer }).statusPage({ windowMs: -1 }), invalid, 'Express: at lb.statusPage()')
  const app = Fastify()
  await t.rejects(async () => { await app.register(affinity, { upstreams: ['http://127.0.0.1:1'], statusPage: { route: 'status' } }) }, invalid, 'Fastify: a route not starting with /')
  await app.close()
})

t.test('chart: a scale of 1, 2, 2.5 or 5 × 10^k in four steps; one band per upstream, stacked', async t => {
  const now = 1_000_000
  const at = (s: number): number => now - s * 1000
  const flat = chartGeometry([], 2, now, 60_000)
  t.same(flat, { yLabels: ['0', '0.1', '0.2', '0.3', '0.4'], paths: ['', ''] }, 'no samples: an empty chart on a small scale')
  const g = chartGeometry([{ at: at(30), values: [3, 4] }, { at: at(0), values: [1, null] }], 2, now, 60_000)
  t.same(g.yLabels, ['0', '2', '4', '6', '8'], 'a total of 7 fits under 8')
  t.equal(g.paths.length, 2, 'a band per series')
  t.ok(g.paths.every(d => /^M[\d.,L]+Z$/.test(d)), 'closed bands')
  t.same(chartGeometry([{ at: at(1), values: [120] }, { at: at(0), values: [0] }], 1, now, 60_000).yLabels, ['0', '50', '100', '150', '200'], '120 fits under 200')
})

t.test('status page: an unknown format gives the page; Express answers only GET and HEAD; the sampler stops with lb.close()', async t => {
  const { balancer } = await trio(t)
  const lb = affinityMiddleware({ balancer })
  const app = express()
  app.all('/lb-status', lb.statusPage({ intervalMs: 100 }))
  app.use('/api', lb)
  const server = app.listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/lb-status`
  t.match((await request(`${url}?format=xml`)).headers['content-type'], /^text\/html/, 'format=xml: the page')
  const post = await request(url, { method: 'POST', body: '' })
  t.equal(post.status, 405, 'POST: 405')
  t.equal(post.headers.allow, 'GET, HEAD', 'with Allow')

  await delay(350)
  const samples = async (): Promise<number> => (await request(`${url}?format=json`)).json().history.samples.length
  t.ok(await samples() >= 2, 'sampling while open')
  await lb.close()
  const after = await samples()
  await delay(350)
  t.equal(await samples(), after, 'no sample after lb.close()')
})

t.test('status page: Fastify stops its sampler with the app; the page is relative to the prefix, and guarded by its onRequest hook', async t => {
  const { balancer } = await trio(t)
  const app = Fastify()
  await app.register(affinity, {
    prefix: '/api',
    balancer,
    statusPage: {
      route: '/_status',
      intervalMs: 100,
      onRequest: async (request, reply) => { if (request.headers.authorization !== 'Bearer ok') await reply.code(401).send({ error: 'unauthorized' }) },
    },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/api/_status`
  t.equal((await request(url)).status, 401, 'the hook refuses')
  const ok = await request(`${url}?format=json`, { headers: { authorization: 'Bearer ok' } })
  t.equal(ok.status, 200, 'and lets through')
  t.same(Object.values(ok.json().picks).filter(n => n !== 0), [], 'neither request was a pick')
  let sampled = 0
  const original = balancer.stats.bind(balancer)
  balancer.stats = () => { sampled++; return original() }
  await delay(250)
  t.ok(sampled >= 1, 'sampling while the app runs')
  await app.close()
  const after = sampled
  await delay(300)
  t.equal(sampled, after, 'no sample after app.close()')
})
