import { fork } from 'node:child_process'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import promClient, { Counter, Registry, type OpenMetricsContentType } from 'prom-client'
import {
  createBalancer, createMetrics, roundRobin, stickyCookie,
  type AffinityMetrics, type Balancer, type BalancerOptions, type BalancerStats,
} from '@affinity/core'
import { startCoreFront } from './helpers/core-front.js'
import { Browser, request, until } from './helpers/http.js'
import { Scrape, expectedFromStats } from './helpers/prometheus.js'
import { deadUrl, startUpstreams, type TestUpstream } from './helpers/upstreams.js'

/**
 * createMetrics() over real sockets (a node:http front on the core, upstreams on
 * 127.0.0.1:0). The adapter routes are in the shared scenario table.
 */

const SECRET = 'metrics-test-secret-0123456789abcdef-01234567'

/** A balancer with a front and upstreams, all closed with the test. */
async function setup (t: Test, n: number, opts: Partial<BalancerOptions> = {}): Promise<{ ups: TestUpstream[], b: Balancer, url: string }> {
  const ups = await startUpstreams(n)
  const b = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), ...opts })
  const front = await startCoreFront(b)
  t.teardown(async () => { await front.close(); await b.close(); await Promise.all(ups.map(u => u.close())) })
  return { ups, b, url: front.url }
}

/**
 * A scrape and the stats() it should equal. Every collect() runs synchronously
 * inside metrics(), so stats() read right after it sees the same figures even
 * while health checks run.
 */
async function scrape (m: AffinityMetrics, b: Balancer): Promise<{ s: Scrape, stats: BalancerStats }> {
  const text = m.metrics()
  const stats = b.stats()
  return { s: new Scrape(await text), stats }
}

const rejectsWith = async (t: Test, p: Promise<unknown>, code: string, message: RegExp, what: string): Promise<void> => {
  await t.rejects(p, { name: 'AffinityError', code, message }, what)
}

t.test('createMetrics(): a registry of its own (not the global one); counters and gauges mirror stats()', async t => {
  const dead = await deadUrl()
  const { b, url } = await setup(t, 2, { passive: false, strategy: roundRobin() })
  b.add({ url: dead, id: 'refusing' })
  const m = await createMetrics(b)
  t.teardown(() => m.close())
  t.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8')
  t.not(m.registry, promClient.register)
  t.ok(m.registry instanceof Registry, 'a prom-client Registry')

  for (let i = 0; i < 4; i++) t.equal((await request(`${url}/echo`)).status, 200)
  t.equal((await request(`${url}/status?code=404`)).status, 404)
  t.equal((await request(`${url}/status?code=503`)).status, 503)
  const { s, stats } = await scrape(m, b)
  t.same(s.of('default'), expectedFromStats(stats, 'default'), "unnamed balancer: balancer=\"default\"; every series equals stats()")
  t.ok(s.get('affinity_upstream_requests_total', { balancer: 'default', upstream: 'refusing', outcome: 'connect_error' })! >= 1, 'refused attempts')
  t.equal(promClient.register.getSingleMetric('affinity_upstream_requests_total'), undefined, 'nothing in the global registry')
  const le = s.series('affinity_upstream_request_duration_seconds_bucket', { upstream: 'S1', outcome: '2xx' }).map(l => l.le)
  t.same(le, ['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'], 'buckets from 5 ms to 10 s')
  t.same(Object.fromEntries([...s.types].filter(([n]) => n.startsWith('affinity_'))), {
    affinity_upstream_requests_total: 'counter',
    affinity_picks_total: 'counter',
    affinity_upstream_ejections_total: 'counter',
    affinity_health_checks_total: 'counter',
    affinity_upstream_in_flight: 'gauge',
    affinity_upstream_websockets: 'gauge',
    affinity_upstream_bound_users: 'gauge',
    affinity_upstream_weight: 'gauge',
    affinity_upstream_effective_weight: 'gauge',
    affinity_upstream_state: 'gauge',
    affinity_upstream_queued: 'gauge',
    affinity_upstream_max_in_flight: 'gauge',
    affinity_retries_total: 'counter',
    affinity_stick_evictions_total: 'counter',
    affinity_stick_store_degraded: 'gauge',
    affinity_stick_store_fallback_reads_total: 'counter',
    affinity_stick_store_outages_total: 'counter',
    affinity_stick_store_errors_total: 'counter',
    affinity_discovery_members: 'gauge',
    affinity_discovery_errors_total: 'counter',
    affinity_discovery_last_update_timestamp_seconds: 'gauge',
    affinity_panic: 'gauge',
    affinity_upstream_request_duration_seconds: 'histogram',
    affinity_queue_wait_seconds: 'histogram',
  }, 'the metric names and types (stick-store series appear only with a shared store: test/redis.test.ts; discovery series only with a source: test/discovery-balancer.test.ts)')

  const again = await scrape(m, b)
  t.same(again.s.of('default'), s.of('default'), 'scraping again without traffic changes nothing (totals, not increments)')

  // A second balancer, also unnamed, in a registry of its own: no collision.
  const other = createBalancer({ upstreams: ['http://127.0.0.1:9'] })
  t.teardown(() => other.close())
  const m2 = await createMetrics(other)
  t.teardown(() => m2.close())
  t.not(m2.registry, m.registry)
})

t.test('createMetrics({ registry, prefix, buckets }); invalid options are refused', async t => {
  const { b, url } = await setup(t, 1, { name: 'edge' })
  const registry = new Registry()
  const m = await createMetrics(b, { registry, prefix: 'lb_', buckets: [0.1, 1] })
  t.teardown(() => m.close())
  t.equal(m.registry, registry, "the user's registry, typed as given")
  await request(`${url}/echo`)
  const { s, stats } = await scrape(m, b)
  t.same(s.of('edge', 'lb_'), expectedFromStats(stats, 'edge', 'lb_'))
  t.same(s.series('lb_upstream_request_duration_seconds_bucket').map(l => l.le), ['0.1', '1', '+Inf'])

  await rejectsWith(t, createMetrics(b, { prefix: 'bad-prefix' }), 'AFFINITY_ERR_INVALID_OPTION', /prefix/, 'a prefix that is no metric name')
  await rejectsWith(t, createMetrics(b, { buckets: [1, 0.5] }), 'AFFINITY_ERR_INVALID_OPTION', /buckets/, 'buckets out of order')
  // @ts-expect-error not a registry
  await rejectsWith(t, createMetrics(b, { registry: {} }), 'AFFINITY_ERR_INVALID_OPTION', /registry/, 'not a registry')
  // @ts-expect-error not a balancer
  await rejectsWith(t, createMetrics({}), 'AFFINITY_ERR_INVALID_OPTION', /balancer/, 'not a balancer')

  const taken = new Registry()
  new Counter({ name: 'affinity_picks_total', help: 'Not ours.', registers: [taken] })
  await rejectsWith(t, createMetrics(b, { registry: taken }), 'AFFINITY_ERR_INVALID_OPTION', /affinity_picks_total.*prefix/, 'a name the registry already holds')
  const beside = await createMetrics(b, { registry: taken, prefix: 'edge_' })
  t.ok(taken.getSingleMetric('edge_picks_total'), 'another prefix fits beside it')
  beside.close()

  const open = new Registry<OpenMetricsContentType>()
  open.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  const om = await createMetrics(b, { registry: open })
  t.teardown(() => om.close())
  t.equal(om.contentType, 'application/openmetrics-text; version=1.0.0; charset=utf-8', 'the registry decides the format')
  t.match(await om.metrics(), /affinity_upstream_requests_total\{balancer="edge",upstream="S1",outcome="2xx"\} 1\n[\s\S]*# EOF\n$/)
})

t.test('two balancers in one registry differ by name; a name twice is refused; close() takes out only its own', async t => {
  const blue = await setup(t, 2, { name: 'blue', strategy: stickyCookie({ secret: SECRET }) })
  const green = await setup(t, 1, { name: 'green' })
  const registry = new Registry()
  const mBlue = await createMetrics(blue.b, { registry })
  const mGreen = await createMetrics(green.b, { registry })
  t.teardown(() => { mBlue.close(); mGreen.close() })
  for (let i = 0; i < 3; i++) await request(`${blue.url}/echo`)
  for (let i = 0; i < 2; i++) await request(`${green.url}/echo`)
  let { s } = await scrape(mBlue, blue.b)
  t.same(s.of('blue'), expectedFromStats(blue.b.stats(), 'blue'))
  t.same(s.of('green'), expectedFromStats(green.b.stats(), 'green'))
  t.equal(s.get('affinity_upstream_bound_users', { balancer: 'blue', upstream: 'S1' })! + s.get('affinity_upstream_bound_users', { balancer: 'blue', upstream: 'S2' })!, 3)

  const twin = createBalancer({ name: 'blue', upstreams: ['http://127.0.0.1:9'] })
  t.teardown(() => twin.close())
  await rejectsWith(t, createMetrics(twin, { registry }), 'AFFINITY_ERR_INVALID_OPTION', /"blue".*own `name`/, 'a second "blue" in the same registry')

  mBlue.close()
  mBlue.close()
  await request(`${blue.url}/echo`)
  await request(`${green.url}/echo`)
  ;({ s } = await scrape(mGreen, green.b))
  t.same(s.of('blue'), {}, 'blue closed: none of its series, its histogram is no longer fed')
  t.same(s.of('green'), expectedFromStats(green.b.stats(), 'green'), 'green unaffected')
  mGreen.close()
  t.same(registry.getMetricsAsArray(), [], 'the last one closed takes the metrics out of the registry')

  const again = await createMetrics(blue.b, { registry })
  t.teardown(() => again.close())
  t.ok(registry.getSingleMetric('affinity_panic'), 'and they can be registered again')
})

t.test('a removed upstream leaves every series, even when its last request ends after; an added one joins', async t => {
  const { ups, b, url } = await setup(t, 2, { strategy: roundRobin() })
  const m = await createMetrics(b)
  t.teardown(() => m.close())
  for (let i = 0; i < 4; i++) await request(`${url}/echo`)
  const slow = request(`${url}/slow?ms=300`)
  await until(() => b.list().some(u => u.inFlight === 1), 3000, 'a request in flight')
  const busy = b.list().find(u => u.inFlight === 1)!.id
  b.remove(busy)
  t.equal((await slow).status, 200, 'the request in flight finished')
  let { s, stats } = await scrape(m, b)
  t.same(s.samples.filter(x => x.labels.upstream === busy), [], `no series names ${busy} (gauges, counters, histogram)`)
  t.same(s.of('default'), expectedFromStats(stats, 'default'))

  b.add({ url: ups.find(u => u.name === busy)!.url, id: 'again', weight: 3 })
  await request(`${url}/echo`)
  await request(`${url}/echo`)
  ;({ s, stats } = await scrape(m, b))
  t.equal(s.get('affinity_upstream_weight', { balancer: 'default', upstream: 'again' }), 3, 'the added upstream has its gauges')
  t.same(s.of('default'), expectedFromStats(stats, 'default'))
})

t.test('health checks, ejections, state, panic and bound users, as stats() says', async t => {
  const { ups, b, url } = await setup(t, 3, {
    strategy: stickyCookie({ secret: SECRET }),
    health: { path: '/health', intervalMs: 30, fall: 1, rise: 1 },
    passive: { failures: 1, cooldownMs: 60_000 },
    panicThreshold: 50,
  })
  const m = await createMetrics(b)
  t.teardown(() => m.close())
  for (let i = 0; i < 3; i++) {
    const user = new Browser()
    for (let k = 0; k < 2; k++) await user.get(`${url}/echo`)
  }
  await until(() => b.stats().upstreams.every(u => u.health.passed >= 2), 5000, 'two passed checks each')
  let { s, stats } = await scrape(m, b)
  t.same(s.of('default'), expectedFromStats(stats, 'default'), 'all up')
  t.equal(s.sum('affinity_upstream_bound_users'), 3, 'three users bound')
  t.equal(s.get('affinity_picks_total', { balancer: 'default', reason: 'sticky' }), 3)

  ups[1]!.healthStatus = 500
  await until(() => b.list()[1]!.state === 'down', 5000, 'S2 down')
  ;({ s, stats } = await scrape(m, b))
  t.same(s.of('default'), expectedFromStats(stats, 'default'), 'S2 down by health')
  t.equal(s.get('affinity_upstream_state', { balancer: 'default', upstream: 'S2', state: 'down' }), 1)
  t.ok(s.get('affinity_health_checks_total', { balancer: 'default', upstream: 'S2', result: 'fail' })! >= 1)
  t.equal(s.get('affinity_panic', { balancer: 'default' }), 0, 'two of three up: no panic at 50 %')

  // A new user lands on S1 or S3; either answers 502 and is ejected: one of three up.
  ups[0]!.failStatus = 502
  ups[2]!.failStatus = 502
  t.equal((await request(`${url}/echo`)).status, 502)
  await until(() => b.stats().panic, 3000, 'panic mode')
  ;({ s, stats } = await scrape(m, b))
  t.same(s.of('default'), expectedFromStats(stats, 'default'), 'one ejected, panic')
  t.equal(s.sum('affinity_upstream_ejections_total'), 1, 'one ejection')
  t.equal(s.sum('affinity_upstream_state', { state: 'down' }), 2)
  t.equal(s.get('affinity_panic', { balancer: 'default' }), 1)
})

t.test('works without prom-client: forwarding as usual, and createMetrics() says what to install', async t => {
  const [up] = await startUpstreams(1)
  t.teardown(() => up!.close())
  const fixtures = new URL('./fixtures/no-prom-client/', import.meta.url)
  // tap's TypeScript loader and --conditions=@affinity/source, plus the hook that hides prom-client.
  const child = fork(new URL('app.ts', fixtures), {
    execArgv: [...process.execArgv, '--import', new URL('register.mjs', fixtures).href],
    env: { ...process.env, UPSTREAM: up!.url },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const exited = once(child, 'exit')
  t.teardown(() => { if (child.exitCode === null) child.kill() })
  const [report] = await once(child, 'message') as [{ status: number, servedBy: string, promClient: string, error: unknown }]
  t.equal(report.promClient, 'ERR_MODULE_NOT_FOUND', 'prom-client cannot be loaded in the child')
  t.equal(report.status, 200, 'the balancer forwards')
  t.equal(report.servedBy, 'S1')
  t.same(report.error, {
    name: 'AffinityError',
    code: 'AFFINITY_ERR_PROM_CLIENT_MISSING',
    message: 'install prom-client to enable metrics (`npm install prom-client`): it is an optional peer dependency of @affinity/core',
  }, 'createMetrics() rejects with a clear AffinityError')
  const [code] = await exited
  t.equal(code, 0, 'the child exits cleanly')
})
