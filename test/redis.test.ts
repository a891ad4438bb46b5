/**
 * @affinity/redis against a real redis-server (started per test on a free loopback
 * port, stopped at teardown): the store itself, two balancer processes sharing one
 * table, a Redis that dies and comes back, and a Redis that never answers.
 *
 * Without redis-server on PATH the file is skipped, unless AFFINITY_REQUIRE_REDIS=1
 * (set by .ci/run, which installs it) makes that a failure.
 */
import t, { type Test } from 'tap'
import { createMetrics, createStatusPage, memoryStickStore } from '@affinity/core'
import { DEGRADED_WARNING_CODE, redisStore, type RedisStoreLogger } from '@affinity/redis'
import { request, until } from './helpers/http.js'
import { forkBalancer, ready, redisClient, startRedisBalancer, startRedisServer, startSilentServer, withRedis } from './helpers/redis.js'
import { startUpstreams, type TestUpstream } from './helpers/upstreams.js'

withRedis(t, tests)

/** Client i's address, as sent in X-Forwarded-For (the balancers trust the proxy). */
const ip = (i: number): string => `10.1.${i >> 8}.${i & 255}`

/** Which upstream served a request from `addr`; fails on anything but 200. */
async function who (url: string, addr: string): Promise<string> {
  const res = await request(`${url}/who`, { headers: { 'x-forwarded-for': addr } })
  if (res.status !== 200) throw new Error(`${addr}: status ${res.status} ${res.body.toString('utf8')}`)
  return res.json().name
}

/** A pino-like logger that keeps what it is given. */
function captureLogger (): RedisStoreLogger & { warns: Array<{ obj: any, msg: string }>, infos: Array<{ obj: any, msg: string }> } {
  const warns: Array<{ obj: any, msg: string }> = []
  const infos: Array<{ obj: any, msg: string }> = []
  return { warns, infos, warn: (obj, msg) => { warns.push({ obj, msg }) }, info: (obj, msg) => { infos.push({ obj, msg }) } }
}

const entries = (ups: TestUpstream[]): Array<{ id: string, url: string }> => ups.map(u => ({ id: u.name, url: u.url }))

/** Three real upstreams, S1–S3, closed at the end of `t`. */
async function upstreams (t: Test): Promise<TestUpstream[]> {
  const ups = await startUpstreams(3)
  t.teardown(() => Promise.all(ups.map(u => u.close())))
  return ups
}

function tests (bin: string): void {
  t.test('redisStore on a real Redis: SET PX, GET, DEL; Redis keeps the TTL; errors fall back', async t => {
    const server = await startRedisServer(t, bin)
    const client = redisClient(t, server.port)
    await ready(client)
    const store = redisStore({ client, timeoutMs: 1000 })
    t.teardown(() => store.close())

    await store.set('203.0.113.7', 'S2', 60_000)
    t.equal(await client.get('affinity:stick:203.0.113.7'), 'S2', 'stored under the default prefix')
    const pttl = await client.pttl('affinity:stick:203.0.113.7')
    t.ok(pttl > 50_000 && pttl <= 60_000, `the TTL is Redis's own (PTTL ${pttl})`)
    t.equal(await store.get('203.0.113.7'), 'S2')
    t.equal(await store.get('198.51.100.1'), undefined, 'a miss is undefined')
    await client.set('affinity:stick:203.0.113.7', 'S3')
    t.equal(await store.get('203.0.113.7'), 'S3', "another instance's binding in Redis wins over this instance's copy")
    await store.delete('203.0.113.7')
    t.equal(await client.exists('affinity:stick:203.0.113.7'), 0, 'delete is a DEL')
    t.equal(await store.get('203.0.113.7'), undefined)

    await store.set('192.0.2.1', 'S1', 150)
    const short = await client.pttl('affinity:stick:192.0.2.1')
    t.ok(short > 0 && short <= 150, `PX 150 (PTTL ${short})`)
    const expired = Date.now()
    while (await client.exists('affinity:stick:192.0.2.1') === 1) {
      if (Date.now() - expired > 5000) throw new Error('Redis did not expire the key')
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    t.equal(await store.get('192.0.2.1'), undefined, 'expired by Redis, and gone from the fallback too')

    const own = redisStore({ client, prefix: 'app1:', timeoutMs: 1000 })
    t.teardown(() => own.close())
    await own.set('k', 'S1', 1000.4)
    t.equal(await client.get('app1:k'), 'S1', 'custom prefix')
    t.same(store.stats(), { degraded: false, outages: 0, fallbackReads: 0, errors: 0, timeouts: 0 }, 'no outage so far')

    for (const bad of [{}, { client: {} }, { client, timeoutMs: 0 }, { client, probeIntervalMs: -1 }, { client, prefix: 7 }]) {
      t.throws(() => redisStore(bad as never), { code: 'AFFINITY_ERR_INVALID_OPTION' }, `rejects ${JSON.stringify(Object.keys(bad))}`)
    }

    // A Redis error (WRONGTYPE here) is an outage like any other: answered by the fallback, probed, recovered.
    const log = captureLogger()
    const fallback = memoryStickStore()
    const erring = redisStore({ client, fallback, logger: log, probeIntervalMs: 20 })
    t.teardown(() => erring.close())
    fallback.set('bad', 'S2', 60_000)
    await client.lpush('affinity:stick:bad', 'x')
    t.equal(await erring.get('bad'), 'S2', 'answered from the fallback')
    t.match(erring.stats(), { degraded: true, outages: 1, errors: 1, timeouts: 0, fallbackReads: 1 })
    t.equal(log.warns.length, 1, 'one warning')
    t.match(log.warns, [{ obj: { err: { message: /WRONGTYPE/ } }, msg: /unavailable/ }], 'with the error')
    await until(() => !erring.stats().degraded, 5000, 'recovery')
    t.match(log.infos, [{ msg: /recovered/ }])

    // A lazyConnect client has not connected yet: the first call does not wait, the probe connects it.
    const lazy = redisClient(t, server.port, { lazyConnect: true })
    const lazyStore = redisStore({ client: lazy, logger: captureLogger(), probeIntervalMs: 20 })
    t.teardown(() => lazyStore.close())
    t.equal(lazy.status, 'wait')
    t.equal(await lazyStore.get('203.0.113.9'), undefined, 'answered at once from the fallback')
    await until(() => !lazyStore.stats().degraded, 5000, 'the lazy client connected')
    await lazyStore.set('203.0.113.9', 'S3', 60_000)
    t.equal(await client.get('affinity:stick:203.0.113.9'), 'S3', 'then Redis is used')

    // After close() the store no longer touches the client.
    lazyStore.close()
    await lazyStore.set('203.0.113.10', 'S1', 60_000)
    t.equal(await client.exists('affinity:stick:203.0.113.10'), 0, 'closed: fallback only')
    t.equal(await lazyStore.get('203.0.113.10'), 'S1')
  })

  t.test('two balancer processes sharing one Redis agree on every client IP, also after one restarts', async t => {
    const server = await startRedisServer(t, bin)
    const ups = await upstreams(t)
    const client = redisClient(t, server.port)
    let started = Date.now()
    const [first, b] = await Promise.all([forkBalancer(t, server.port, entries(ups)), forkBalancer(t, server.port, entries(ups))])
    let a = first
    t.comment(`two balancer processes ready in ${Date.now() - started} ms`)

    // Clients arrive alternately through A and B. leastConnections places each new one
    // by its own rotation, so without a shared table the instances would disagree on
    // about two clients in three.
    const addrs = Array.from({ length: 60 }, (_, i) => ip(i))
    const bound: string[] = []
    for (const [i, addr] of addrs.entries()) bound.push(await who(i % 2 === 0 ? a.url : b.url, addr))
    t.same(new Set(bound).size, 3, 'clients spread over all 3 upstreams')
    const crossed: string[] = []
    for (const [i, addr] of addrs.entries()) crossed.push(await who(i % 2 === 0 ? b.url : a.url, addr))
    t.same(crossed, bound, 'every client is served by the same upstream through the other instance')
    t.equal((await client.keys('affinity:stick:*')).length, 60, 'one Redis key per client')

    // A crashes and comes back with an empty memory: the table is in Redis.
    await a.kill()
    started = Date.now()
    a = await forkBalancer(t, server.port, entries(ups))
    t.comment(`A restarted in ${Date.now() - started} ms`)
    const afterRestart: string[] = []
    for (const addr of addrs) afterRestart.push(await who(a.url, addr))
    t.same(afterRestart, bound, 'the restarted instance serves every client where it was')
    const viaB: string[] = []
    for (const addr of addrs) viaB.push(await who(b.url, addr))
    t.same(viaB, bound, 'and so does the other one')
    t.match(await b.stats(), { degraded: false, outages: 0, errors: 0, timeouts: 0 })
    t.match(await a.stats(), { degraded: false, outages: 0, errors: 0, timeouts: 0 })
  })

  t.test('Redis dies mid-test: requests are answered from the in-memory table, then the store recovers', async t => {
    const server = await startRedisServer(t, bin)
    const ups = await upstreams(t)
    // No logger: the outage is reported as a process warning.
    const lb = await startRedisBalancer(t, { redisPort: server.port, upstreams: entries(ups), store: { probeIntervalMs: 100 } })
    const warnings: Error[] = []
    const onWarning = (w: Error & { code?: string }): void => { if (w.code === DEGRADED_WARNING_CODE) warnings.push(w) }
    process.on('warning', onWarning)
    t.teardown(() => { process.off('warning', onWarning) })
    const events: string[] = []
    lb.store.on('degraded', (err) => events.push(`degraded ${(err as Error & { code?: string }).code ?? err.message}`))
    lb.store.on('recovered', () => events.push('recovered'))
    const probe = redisClient(t, server.port)

    const addrs = Array.from({ length: 40 }, (_, i) => ip(i))
    const bound = new Map<string, string>()
    for (const addr of addrs.slice(0, 30)) bound.set(addr, await who(lb.url, addr))

    await server.kill()
    for (const addr of addrs.slice(0, 30)) t.equal(await who(lb.url, addr), bound.get(addr), `${addr} stays on ${bound.get(addr)} while Redis is down`, { diagnostic: false })
    for (const addr of addrs.slice(30)) bound.set(addr, await who(lb.url, addr))
    t.pass('new clients are placed and answered while Redis is down')
    for (const addr of addrs.slice(30)) t.equal(await who(lb.url, addr), bound.get(addr), `${addr}, new during the outage, is sticky`, { diagnostic: false })
    t.equal(warnings.length, 1, 'one warning for the outage, not one per request')
    t.match(warnings[0]?.message, /unavailable/)
    t.match(lb.store.stats(), { degraded: true, outages: 1 })
    t.ok(lb.store.stats().fallbackReads >= 50, `reads answered by the fallback: ${lb.store.stats().fallbackReads}`)
    // Usually the client has noticed the closed connection (NOT_READY); if not, the command fails.
    t.match(events, [/^degraded /])
    t.equal(events.length, 1, 'one degraded event')

    // Redis comes back on the same port, empty (no persistence).
    await server.start()
    await until(() => !lb.store.stats().degraded, 10_000, 'the store to recover')
    t.same(events.slice(1), ['recovered'])
    t.equal(lb.store.stats().outages, 1)
    for (const addr of addrs) t.equal(await who(lb.url, addr), bound.get(addr), `${addr} stays after the recovery`, { diagnostic: false })
    await ready(probe)
    t.equal(await probe.get(`affinity:stick:${addrs[0]}`), bound.get(addrs[0]!), 'bindings are written back to the new Redis')
    t.equal(await probe.get(`affinity:stick:${addrs[35]}`), bound.get(addrs[35]!), 'including those made during the outage')

    // Another instance moves a client in Redis: Redis wins over this instance's stale entry.
    const moved = addrs[1]!
    const other = ups.map(u => u.name).find(n => n !== bound.get(moved))!
    await probe.set(`affinity:stick:${moved}`, other, 'PX', 60_000)
    t.equal(await who(lb.url, moved), other, 'Redis wins after the recovery')

    // A second outage is counted and reported once more.
    await server.kill()
    t.equal(await who(lb.url, addrs[2]!), bound.get(addrs[2]!))
    t.equal(await who(lb.url, addrs[2]!), bound.get(addrs[2]!))
    t.equal(lb.store.stats().outages, 2, 'a second outage')
    await until(() => warnings.length === 2, 2000, 'the second warning')
  })

  t.test('a Redis that never answers: every request is answered promptly from the in-memory table', async t => {
    const hung = await startSilentServer(t)
    const ups = await upstreams(t)
    const log = captureLogger()
    // Without the ready check (INFO) and CLIENT SETINFO, which it would wait for, the
    // client calls itself ready once TCP connects, so commands are really sent and never
    // answered: the timeout path.
    const redis = { enableReadyCheck: false, disableClientInfo: true }
    const lb = await startRedisBalancer(t, { redisPort: hung.port, upstreams: entries(ups), store: { logger: log, timeoutMs: 50 }, redis })
    t.equal(lb.client.status, 'ready', 'the client believes it is connected')

    const addrs = Array.from({ length: 20 }, (_, i) => ip(i))
    const timed = async (addr: string): Promise<{ name: string, ms: number }> => {
      const started = Date.now()
      const name = await who(lb.url, addr)
      return { name, ms: Date.now() - started }
    }
    // Ten at once (all waiting on the first, unanswered, commands), then one by one.
    const first = await Promise.all(addrs.slice(0, 10).map(timed))
    const rest: Array<{ name: string, ms: number }> = []
    for (const addr of addrs.slice(10)) rest.push(await timed(addr))
    const slowest = Math.max(...[...first, ...rest].map(r => r.ms))
    t.ok(slowest < 1000, `every request answered, the slowest in ${slowest} ms`)
    const again = await Promise.all(addrs.map(addr => who(lb.url, addr)))
    t.same(again, [...first, ...rest].map(r => r.name), 'clients are sticky through the fallback')

    const stats = lb.store.stats()
    t.match(stats, { degraded: true, outages: 1 })
    t.ok(stats.timeouts >= 1, `timeouts counted: ${stats.timeouts}`)
    t.equal(log.warns.length, 1, 'one warning')
    t.equal(log.warns[0]?.obj.err.code, 'AFFINITY_REDIS_TIMEOUT')
    // The outage is visible where operators look: stats() and the Prometheus metrics.
    const seen = lb.balancer.stats().store!
    t.match(seen, { degraded: true, outages: 1 }, 'balancer.stats().store reports the outage')
    t.ok((seen.fallbackReads ?? 0) >= 20, `fallback reads in stats(): ${seen.fallbackReads}`)
    const metrics = await createMetrics(lb.balancer)
    const text = await metrics.metrics()
    metrics.close()
    t.match(text, /^affinity_stick_store_degraded\{balancer="default"\} 1$/m, 'affinity_stick_store_degraded 1')
    t.match(text, /^affinity_stick_store_outages_total\{balancer="default"\} 1$/m)
    t.match(text, /^affinity_stick_store_errors_total\{balancer="default",kind="timeout"\} [1-9]/m)
    t.match(text, /^affinity_stick_store_fallback_reads_total\{balancer="default"\} [1-9]/m)
    const page = createStatusPage(lb.balancer)
    t.match(JSON.parse(String(page.respond('/?format=json').body)).store, { degraded: true, outages: 1 }, "the status page's JSON view too")
    page.close()

    // With the default ready check the client never becomes ready: the store does not even send.
    const waiting = redisClient(t, hung.port)
    const store = redisStore({ client: waiting, logger: captureLogger() })
    t.teardown(() => store.close())
    const started = Date.now()
    t.equal(await store.get('192.0.2.5'), undefined)
    await store.set('192.0.2.5', 'S1', 60_000)
    await store.delete('192.0.2.5')
    t.ok(Date.now() - started < 1000, 'nothing waits on a client that is not ready')
    t.match(store.stats(), { degraded: true, outages: 1, errors: 1, timeouts: 0 })
  })
}
