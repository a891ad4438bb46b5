/**
 * Overload, below the adapters (their HTTP behaviour: adapters/overload.ts): option
 * checks, leastConnections with two choices (seeded, so every count below is
 * reproducible), stick-table and token-cache pressure, and what happens to waiting
 * requests when their upstream leaves or the balancer closes.
 */
import { once } from 'node:events'
import t from 'tap'
import {
  Choice, createBalancer, createMetrics, leastConnections, logStateChanges, Members, memoryStickStore, roundRobin, stickyCookie, stickyIp,
  type AffinityLogger, type PressureInfo, type RouteRequest, type Strategy,
} from '@affinity/core'
import { Pressure, SCAN_UP_TO, Upstream } from '@affinity/core/internal'
import { startHeld } from './helpers/held-upstream.js'
import { request, until } from './helpers/http.js'
import { startCoreFront } from './helpers/core-front.js'

const SECRET = 'overload-core-secret-0123456789abcdefghij'
const req = (ip = '10.0.0.1', cookies: Record<string, string> = {}): RouteRequest => ({ method: 'GET', url: '/', headers: {}, ip, cookies })

t.test('overload options are checked: unknown or invalid ones are refused', async t => {
  const upstreams = ['http://127.0.0.1:9']
  const bad: Array<[object, string, RegExp]> = [
    [{ maxInFlight: 0 }, 'AFFINITY_ERR_INVALID_OPTION', /maxInFlight/],
    [{ maxInFlight: 1.5 }, 'AFFINITY_ERR_INVALID_OPTION', /maxInFlight/],
    [{ maxWebSockets: -1 }, 'AFFINITY_ERR_INVALID_OPTION', /maxWebSockets/],
    [{ queue: { max: 10 } }, 'AFFINITY_ERR_INVALID_OPTION', /queue.*timeoutMs/],
    [{ queue: { max: 0, timeoutMs: 100 } }, 'AFFINITY_ERR_INVALID_OPTION', /queue\.max/],
    [{ queue: { max: 1, timeoutMs: 0 } }, 'AFFINITY_ERR_INVALID_OPTION', /queue\.timeoutMs/],
    [{ queue: { max: 1, timeoutMs: 10, timeout: 5 } }, 'AFFINITY_ERR_UNKNOWN_OPTION', /`timeout` for queue/],
    [{ queue: 5 }, 'AFFINITY_ERR_INVALID_OPTION', /queue/],
    [{ retryBudget: { percent: 120 } }, 'AFFINITY_ERR_INVALID_OPTION', /retryBudget\.percent/],
    [{ retryBudget: { min: -1 } }, 'AFFINITY_ERR_INVALID_OPTION', /retryBudget\.min/],
    [{ retryBudget: { ratio: 0.2 } }, 'AFFINITY_ERR_UNKNOWN_OPTION', /`ratio` for retryBudget/],
  ]
  for (const [opts, code, message] of bad) t.throws(() => createBalancer({ upstreams, ...opts } as never), { code, message }, JSON.stringify(opts))
  t.throws(() => createBalancer({ upstreams: [{ url: upstreams[0]!, maxInFlight: 0 }] }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /maxInFlight/ }, 'an upstream entry with maxInFlight 0')
  t.throws(() => createBalancer({ upstreams: [{ url: upstreams[0]!, maxQueue: 3 } as never] }), { code: 'AFFINITY_ERR_UNKNOWN_OPTION', message: /`maxQueue` for upstream/ })
  t.throws(() => leastConnections({ choices: 1 }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /choices/ })
  t.throws(() => leastConnections({ choices: 'some' as never }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /choices/ })
  t.throws(() => leastConnections({ seed: -1 }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /seed/ })
  t.throws(() => leastConnections({ choice: 2 } as never), { code: 'AFFINITY_ERR_UNKNOWN_OPTION' })

  const b = createBalancer({ upstreams: [upstreams[0]!, { url: 'http://127.0.0.1:10', maxInFlight: 7, maxWebSockets: 2 }], maxInFlight: 50, retryBudget: {} })
  t.teardown(() => b.close())
  const limits = (url: string): unknown[] => { const u = b.stats().upstreams.find(x => x.url === url)!; return [u.maxInFlight, u.maxWebSockets] }
  t.same([limits(upstreams[0]!), limits('http://127.0.0.1:10')], [[50, undefined], [7, 2]], 'an entry overrides the balancer-wide default')
  const added = b.add({ url: 'http://127.0.0.1:11', id: 'late' })
  t.equal(b.stats().upstreams.find(u => u.id === added.id)!.maxInFlight, 50, 'an upstream added later gets the default too')
})

/** `n` upstreams over a never-used pool, weights cycling through `weights`. */
function fleet (n: number, weights: readonly number[] = [1]): Upstream[] {
  return Array.from({ length: n }, (_, i) => {
    const id = `u${String(i).padStart(4, '0')}`
    return new Upstream(`http://10.0.${i >> 8}.${i & 255}:80`, id, weights[i % weights.length]!, {} as never)
  })
}

function picks (s: Strategy, k: number, hold = false): Upstream[] {
  const out: Upstream[] = []
  const r = req()
  for (let i = 0; i < k; i++) {
    const u = s.pick(r, new Choice(r)) as Upstream
    if (hold) u.inFlight++
    out.push(u)
  }
  return out
}

t.test('leastConnections({ choices: 2 }): idle, the draws split by weight', async t => {
  const ups = fleet(40, [1, 2, 3, 4])
  const s = leastConnections({ choices: 2, seed: 42 })
  s.update(new Members(ups, 0))
  const byWeight = new Map<number, number>()
  for (const u of picks(s, 100_000)) byWeight.set(u.weight, (byWeight.get(u.weight) ?? 0) + 1)
  for (const w of [1, 2, 3, 4]) {
    const share = byWeight.get(w)! / 100_000
    t.ok(Math.abs(share - w / 10) < 0.01, `weight ${w}: ${(share * 100).toFixed(2)}% of picks (ideal ${w * 10}%)`)
  }
})

t.test('leastConnections({ choices: 2 }): under load, in-flight per unit of weight stays even', async t => {
  for (const weights of [[1], [1, 2, 3, 4]]) {
    const ups = fleet(100, weights)
    const s = leastConnections({ choices: 2, seed: 7 })
    s.update(new Members(ups, 0))
    picks(s, 20_000, true)
    const ratios = ups.map(u => u.inFlight / u.weight)
    const mean = 20_000 / ups.reduce((n, u) => n + u.weight, 0)
    const max = Math.max(...ratios)
    const min = Math.min(...ratios)
    // Two choices keep the busiest within O(log log n) of the mean (Mitzenmacher 2001);
    // one random choice would leave it about √(mean · 2 ln n) ≈ 20 above at this load.
    t.ok(max - mean <= 3, `weights ${weights}: the busiest is ${(max - mean).toFixed(2)} above the mean (${mean.toFixed(1)} per unit of weight)`)
    t.ok(mean - min <= 3, `weights ${weights}: the idlest is ${(mean - min).toFixed(2)} below it`)
  }
})

t.test('leastConnections({ choices: 2 }): seeded, never a tried or set-aside upstream', async t => {
  const ups = fleet(50)
  const seq = (seed: number): string[] => {
    const s = leastConnections({ choices: 2, seed })
    s.update(new Members(ups, 0))
    return picks(s, 200).map(u => u.id)
  }
  t.same(seq(3), seq(3), 'the same seed draws the same picks')
  t.not(seq(3).join(), seq(4).join(), 'another seed, other picks')

  const s = leastConnections({ choices: 2, seed: 5 })
  s.update(new Members(ups, 0))
  const aside = new Set(ups.slice(0, 45))
  const r = req()
  for (let i = 0; i < 2000; i++) {
    const choice = new Choice(r)
    choice.tried = [ups[45]!]
    const u = s.pick(r, choice, aside) as Upstream
    if (aside.has(u) || u === ups[45]) { t.fail(`picked ${u.id}`); return }
  }
  t.pass('2,000 picks with 45 of 50 set aside and one tried: never one of them')
  t.equal(s.pick(r, new Choice(r), new Set(ups)), undefined, 'everything set aside: undefined')
})

t.test(`leastConnections(): a full scan up to ${SCAN_UP_TO} eligible upstreams, two choices above`, async t => {
  const rotation = (n: number): number => {
    const s = leastConnections({ seed: 1 })
    s.update(new Members(fleet(n), 0))
    return new Set(picks(s, n).map(u => u.id)).size
  }
  t.equal(rotation(SCAN_UP_TO), SCAN_UP_TO, `${SCAN_UP_TO} idle upstreams: the scan's tie rotation visits each once per round`)
  t.ok(rotation(SCAN_UP_TO + 8) < SCAN_UP_TO + 8, 'above: random draws, which repeat within a round')
  const all = leastConnections({ choices: 'all' })
  all.update(new Members(fleet(100), 0))
  t.equal(new Set(picks(all, 100).map(u => u.id)).size, 100, "choices: 'all' scans at any size")
})

t.test('stickyIp: bindings evicted from a full in-memory table are counted, and reported once a minute at most', async t => {
  const b = createBalancer({ upstreams: ['http://127.0.0.1:9', 'http://127.0.0.1:10'], strategy: stickyIp({ store: memoryStickStore({ maxEntries: 10 }) }) })
  t.teardown(() => b.close())
  const events: PressureInfo[] = []
  b.on('pressure', info => events.push(info))
  for (let i = 0; i < 25; i++) b.choose(req(`10.1.0.${i}`))
  t.match(b.stats().store, { entries: 10, maxEntries: 10, evicted: 15 }, '15 clients lost their binding to the 10-entry table')
  t.same(events, [{ table: 'store', evicted: 1, windowMs: 60_000 }], 'the first eviction is reported at once; the rest wait for the minute to end')
  t.equal(b.stats().tokenCache, undefined)
  const m = await createMetrics(b)
  t.teardown(() => m.close())
  t.match(await m.metrics(), /^affinity_stick_evictions_total\{balancer="default",table="store"\} 15$/m, 'in the metrics')
})

t.test('memoryStickStore: an entry evicted after its TTL ran out lost nothing: not counted', async t => {
  const store = memoryStickStore({ maxEntries: 4 })
  for (let i = 0; i < 4; i++) store.set(`k${i}`, 'a', 1)
  // The behaviour under test is the expiry itself: wait for the 1 ms TTL to pass.
  const end = performance.now() + 3
  while (performance.now() < end) { /* spin: a few ms */ }
  for (let i = 4; i < 8; i++) store.set(`k${i}`, 'a', 60_000)
  t.match(store.table!(), { entries: 4, evicted: 0 })
  store.set('k8', 'a', 60_000)
  t.match(store.table!(), { entries: 4, evicted: 1 }, 'a live one pushed out is counted')
})

t.test('stickyCookie: token-cache evictions are counted under tokenCache', async t => {
  const b = createBalancer({ upstreams: ['http://127.0.0.1:9'], strategy: stickyCookie({ secret: SECRET, cacheSize: 5 }) })
  t.teardown(() => b.close())
  const events: PressureInfo[] = []
  b.on('pressure', info => events.push(info))
  const cookies: string[] = []
  for (let i = 0; i < 12; i++) {
    const c = b.choose(req()) as Choice
    cookies.push(c.setCookie!.split(';')[0]!.split('=')[1]!)
  }
  t.same(b.stats().tokenCache, { entries: 5, max: 5, evicted: 7 })
  t.same(events, [{ table: 'tokenCache', evicted: 1, windowMs: 60_000 }])
  const back = b.choose(req('10.0.0.1', { affinity: cookies[0]! })) as Choice
  t.equal(back.reason, 'sticky', 'an evicted token still verifies (by HMAC): the user keeps their upstream')
})

t.test('Pressure: one event per window, the evictions in between summed', async t => {
  const events: PressureInfo[] = []
  const emitter = new (await import('node:events')).EventEmitter()
  const p = new Pressure(info => { events.push(info); emitter.emit('event') }, 30)
  t.teardown(() => p.close())
  for (let i = 0; i < 5; i++) p.note('store')
  p.note('tokenCache')
  t.same(events.map(e => [e.table, e.evicted]), [['store', 1], ['tokenCache', 1]], 'the first of each table at once')
  // The window's timer is unref'd (it holds no process open): this one keeps the test
  // alive, and bounds a hang.
  const guard = setTimeout(() => emitter.emit('error', new Error('no second event')), 5000)
  await once(emitter, 'event')
  clearTimeout(guard)
  t.same(events.map(e => [e.table, e.evicted]), [['store', 1], ['tokenCache', 1], ['store', 4]], 'the other four once the window ended')
})

t.test("logStateChanges: 'pressure' becomes a warning that says what to do", async t => {
  const b = createBalancer({ upstreams: ['http://127.0.0.1:9'], strategy: stickyIp({ store: memoryStickStore({ maxEntries: 1 }) }) })
  t.teardown(() => b.close())
  const lines: Array<{ level: string, obj: object, msg: string }> = []
  const at = (level: string) => (obj: object, msg: string): void => { lines.push({ level, obj, msg }) }
  const logger: AffinityLogger = { debug: at('debug'), info: at('info'), warn: at('warn') }
  const stop = logStateChanges(b, logger)
  t.teardown(stop)
  for (let i = 0; i < 5; i++) b.choose(req(`10.2.0.${i}`))
  t.equal(lines.length, 1, 'one line for four evictions')
  t.match(lines[0], { level: 'warn', obj: { table: 'store', evicted: 1 }, msg: /stick table is full.*maxEntries.*Redis/ })
})

t.test('waiting requests: moved when their upstream is removed; answered 503 when the balancer closes', async t => {
  const ups = await startHeld(['A', 'B'])
  t.teardown(() => Promise.all(ups.map(u => u.close())))
  const b = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: roundRobin(), maxInFlight: 1, queue: { max: 5, timeoutMs: 30_000 }, passive: false })
  const front = await startCoreFront(b)
  t.teardown(() => front.close())
  const held = [request(`${front.url}/hold?a`), request(`${front.url}/hold?b`)]
  await Promise.all(ups.map(u => u.arrivals(1)))
  const waiting = request(`${front.url}/echo?moved`)
  await until(() => b.list().some(u => u.queued === 1), 5000, 'the third request to wait')
  const at = b.list().find(u => u.queued === 1)!.id
  const other = ups.find(u => u.name !== at)!
  b.remove(at)
  await until(() => b.list()[0]!.queued === 1, 5000, 'the request to wait at the remaining upstream')
  other.release()
  t.equal((await waiting).json().name, other.name, 'served by the remaining upstream')
  held.push(request(`${front.url}/hold?c`))
  await other.arrivals(3)
  const more = request(`${front.url}/echo?closing`)
  await until(() => b.list()[0]!.queued === 1, 5000, 'another request to wait')
  await Promise.race([b.close(), Promise.resolve()])
  const answer = await more
  t.equal(answer.status, 503, 'a balancer that closes answers its waiting requests')
  t.equal(answer.headers['retry-after'] !== undefined, true)
  for (const u of ups) u.release(5)
  await Promise.all(held)
})

t.test('metrics: queue length, waits by result, queue outcomes, retries', async t => {
  const [a] = await startHeld(['A'])
  t.teardown(() => a!.close())
  const b = createBalancer({ upstreams: [{ url: a!.url, id: 'A', maxInFlight: 1 }], queue: { max: 1, timeoutMs: 30_000 }, passive: false })
  t.teardown(() => b.close())
  const m = await createMetrics(b)
  t.teardown(() => m.close())
  const front = await startCoreFront(b)
  t.teardown(() => front.close())
  const first = request(`${front.url}/hold`)
  await a!.arrivals(1)
  const second = request(`${front.url}/echo?waits`)
  await until(() => b.list()[0]!.queued === 1, 5000, 'the second request to wait')
  t.match(await m.metrics(), /^affinity_upstream_queued\{balancer="default",upstream="A"\} 1$/m, 'the queue length')
  t.equal((await request(`${front.url}/echo?full`)).status, 503)
  a!.release()
  t.same([(await first).status, (await second).status], [200, 200])
  const text = await m.metrics()
  t.match(text, /^affinity_upstream_queued\{balancer="default",upstream="A"\} 0$/m)
  t.match(text, /^affinity_upstream_max_in_flight\{balancer="default",upstream="A"\} 1$/m)
  t.match(text, /^affinity_queue_wait_seconds_count\{balancer="default",upstream="A",result="admitted"\} 1$/m, 'one wait that ended in a slot')
  t.match(text, /^affinity_upstream_requests_total\{balancer="default",upstream="A",outcome="queue_full"\} 1$/m, 'the refusal, as an outcome')
  t.match(text, /^affinity_retries_total\{balancer="default",result="refused"\} 0$/m)
})
