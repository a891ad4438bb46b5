/**
 * Two copies of @affinity/core in one app: npm installs a second copy when the app's
 * version range and an adapter's differ, and the app's balancer then reaches adapters
 * linked to the other copy. The second copy here is core's src copied into a fixture
 * folder and loaded from its own file URLs: every module of it, the Balancer class
 * included, is a distinct instance.
 */
import { cp } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import * as core from '@affinity/core'
import { balancerFrom } from '@affinity/core/adapter'
import { expressHarness, fastifyHarness, type AdapterHarness } from './adapters/harness.js'
import { Browser, SECRET_A, entries, idOf, byName, upstreams } from './adapters/scenarios.js'
import { request } from './helpers/http.js'
import { Scrape } from './helpers/prometheus.js'

type Core = typeof core

const coreDir = fileURLToPath(new URL('../packages/core/', import.meta.url))

async function secondCopy (t: Test): Promise<Core> {
  // A tap fixture folder (.tap/fixtures/…, removed after the test and left out of
  // coverage) holding core's src, with core's own node_modules linked beside it so
  // undici and lru-cache resolve as they do for the original.
  const dir = t.testdir({ node_modules: t.fixture('symlink', join(coreDir, 'node_modules')) })
  await cp(join(coreDir, 'src'), join(dir, 'src'), { recursive: true })
  return await import(pathToFileURL(join(dir, 'src', 'index.ts')).href) as Core
}

t.test('the second copy is a distinct module graph (what the brand check must cope with)', async t => {
  const other = await secondCopy(t)
  t.not(other.Balancer, core.Balancer, 'a different Balancer class')
  const lb = other.createBalancer({ upstreams: ['http://127.0.0.1:1'] })
  t.teardown(() => lb.close())
  t.notOk(lb instanceof core.Balancer, 'instanceof would refuse it')
  // Core's own entry points accept it.
  const page = core.createStatusPage(lb)
  page.close()
  t.equal(balancerFrom({ balancer: lb }).balancer, lb)
  t.throws(() => balancerFrom({ balancer: {} as core.Balancer }), { code: 'AFFINITY_ERR_INVALID_OPTION' }, 'an object without the brand is still refused')
  t.throws(() => core.createStatusPage(Object.create(null) as core.Balancer), { code: 'AFFINITY_ERR_INVALID_OPTION' })
  await t.rejects(core.createMetrics(null as unknown as core.Balancer), { code: 'AFFINITY_ERR_INVALID_OPTION' })
})

for (const h of [fastifyHarness(), expressHarness()] as AdapterHarness[]) {
  t.test(`${h.name}: a balancer from another copy of core`, async t => {
    const other = await secondCopy(t)
    const ups = await upstreams(t, 3)
    const lb = other.createBalancer({ upstreams: entries(ups), strategy: other.stickyCookie({ secret: SECRET_A }) })
    t.teardown(() => lb.close())
    const app = await h.start(t, { source: { balancer: lb }, metrics: {}, statusPage: {} })

    const user = new Browser()
    const pinned = await user.visit(app.base)
    for (let i = 0; i < 5; i++) t.equal(await user.visit(app.base), pinned, 'sticks through the foreign balancer')
    const id = idOf(byName(ups, pinned))
    t.equal(lb.stats().upstreams.find(u => u.id === id)?.requests, 6, 'the foreign balancer counted the requests')

    const page = await request(`${app.base}/affinity/status?format=json`)
    t.equal(page.status, 200, 'status page over the foreign balancer')
    t.equal(page.json().upstreams.length, 3)
    const scrape = await request(`${app.base}/metrics`)
    t.equal(scrape.status, 200, 'metrics over the foreign balancer')
    t.equal(new Scrape(scrape.body.toString()).get('affinity_upstream_requests_total', { balancer: 'default', upstream: id, outcome: '2xx' }), 6, 'its attempts in the scrape')
  })

  t.test(`${h.name}: shorthand options with a strategy from another copy of core`, async t => {
    const other = await secondCopy(t)
    const ups = await upstreams(t, 3)
    const app = await h.start(t, { source: { upstreams: entries(ups), strategy: other.stickyCookie({ secret: SECRET_A }) } })
    const user = new Browser()
    const pinned = await user.visit(app.base)
    for (let i = 0; i < 5; i++) t.equal(await user.visit(app.base), pinned, 'sticks')
  })
}
