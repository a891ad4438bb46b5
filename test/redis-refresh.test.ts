/**
 * One Redis round trip per sticky hit (@affinity/redis, refresh.ts), against real
 * redis-server processes: GETEX where the server has it, and where it does not (renamed
 * away with --rename-command, or refused by an ACL), a plain GET with the SET made only
 * once past half the TTL. Commands are counted by Redis itself (INFO commandstats),
 * asked over the store's own connection, so every command the store sent before is counted.
 *
 * Without redis-server on PATH the file is skipped, unless AFFINITY_REQUIRE_REDIS=1.
 */
import t, { type Test } from 'tap'
import type { Redis } from 'ioredis'
import { createBalancer, stickyIp, type Balancer } from '@affinity/core'
import { redisStore, type RedisStickStore } from '@affinity/redis'
import { ready, redisClient, startRedisServer, withRedis } from './helpers/redis.js'

withRedis(t, tests)

/** Calls per command since the last CONFIG RESETSTAT, e.g. { get: 3, set: 1 } (the test's own CONFIG and INFO left out). */
async function commandCalls (client: Redis): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const m of (await client.info('commandstats')).matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    if (!m[1]!.startsWith('config') && m[1] !== 'info') out[m[1]!] = Number(m[2])
  }
  return out
}

/**
 * stickyIp over a Redis store, on upstreams that choose() names but never contacts (these
 * tests are about the store's commands, not forwarding). Closed at the end of `t`.
 */
function sticky (t: Test, client: Redis, ttlMs: number): { store: RedisStickStore, balancer: Balancer, upstreamOf: (ip: string) => Promise<string | undefined> } {
  const store = redisStore({ client, timeoutMs: 1000 })
  const balancer = createBalancer({
    upstreams: [{ id: 'S1', url: 'http://127.0.0.1:1' }, { id: 'S2', url: 'http://127.0.0.1:2' }, { id: 'S3', url: 'http://127.0.0.1:3' }],
    strategy: stickyIp({ store, ttlMs }),
  })
  t.teardown(async () => { await balancer.close(); store.close() })
  const upstreamOf = async (ip: string): Promise<string | undefined> =>
    (await balancer.choose({ method: 'GET', url: '/', headers: {}, ip, cookies: {}, protocol: 'http' })).upstream?.id
  return { store, balancer, upstreamOf }
}

function tests (bin: string): void {
  t.test('Redis with GETEX: a sticky hit is one GETEX, which refreshes the TTL; no SET', async t => {
    const server = await startRedisServer(t, bin)
    const client = redisClient(t, server.port)
    await ready(client)
    t.ok(((await client.call('COMMAND', 'INFO', 'GETEX')) as unknown[])[0], 'this redis-server has GETEX')
    const { store, upstreamOf } = sticky(t, client, 60_000)

    const first = await upstreamOf('203.0.113.7')
    // GETEX needs the TTL, learned from the first SET, and the detection's answer: hits
    // are plain GETs until both are in. Wait for the first GETEX Redis counts.
    let hits = 0
    while ((await commandCalls(client)).getex === undefined) {
      t.equal(await upstreamOf('203.0.113.7'), first, 'sticky while the store learns', { diagnostic: false })
      if (++hits > 100) throw new Error('no GETEX after 100 hits')
    }
    await client.config('RESETSTAT')
    for (let i = 0; i < 20; i++) t.equal(await upstreamOf('203.0.113.7'), first, `hit ${i + 1} stays on ${first}`, { diagnostic: false })
    const calls = await commandCalls(client)
    t.same(calls, { getex: 20 }, 'one GETEX per hit: no SET, no GET')

    // The GETEX is what keeps an active client bound: its TTL is full again after a hit.
    await client.pexpire('affinity:stick:203.0.113.7', 2000)
    t.equal(await upstreamOf('203.0.113.7'), first)
    const pttl = await client.pttl('affinity:stick:203.0.113.7')
    t.ok(pttl > 50_000, `the hit refreshed the TTL to ttlMs (PTTL ${pttl})`)

    // A new client: a GETEX that misses, then the SET of its placement.
    await client.config('RESETSTAT')
    const placed = await upstreamOf('198.51.100.1')
    t.same(await commandCalls(client), { getex: 1, set: 1 }, 'a new client: GETEX (miss) + SET')
    t.equal(await client.get('affinity:stick:198.51.100.1'), placed)

    // A read followed by a set to another upstream (a failover) is written.
    t.equal(await store.get('198.51.100.1'), placed)
    const other = ['S1', 'S2', 'S3'].find(id => id !== placed)!
    await store.set('198.51.100.1', other, 60_000)
    t.equal(await client.get('affinity:stick:198.51.100.1'), other, 'a moved binding is written')
    // And a binding another instance moved in Redis wins, with no write back.
    await client.set('affinity:stick:198.51.100.1', placed!, 'PX', 60_000)
    await client.config('RESETSTAT')
    t.equal(await upstreamOf('198.51.100.1'), placed, "another instance's binding wins")
    t.same(await commandCalls(client), { getex: 1 }, 'one GETEX, nothing else')
  })

  t.test('Redis without GETEX (renamed away): GET per hit, SET only once past half the TTL', async t => {
    const server = await startRedisServer(t, bin, ['--rename-command', 'GETEX', ''])
    const client = redisClient(t, server.port)
    await ready(client)
    t.same(await client.call('COMMAND', 'INFO', 'GETEX'), [null], 'COMMAND INFO does not know GETEX')
    await t.rejects(client.getex('k', 'PX', 1000), /unknown command/, 'and the server refuses it')

    // A long TTL: every hit comes well within half of it, so none writes.
    const long = sticky(t, client, 60_000)
    const first = await long.upstreamOf('203.0.113.7')
    await client.config('RESETSTAT')
    for (let i = 0; i < 20; i++) t.equal(await long.upstreamOf('203.0.113.7'), first, `hit ${i + 1} stays on ${first}`, { diagnostic: false })
    t.same(await commandCalls(client), { get: 20 }, 'one GET per hit, no SET within half the TTL')
    t.equal(long.store.stats().errors, 0, 'no error: GETEX was never sent')

    // A short TTL: once half of it has passed (Redis's own clock: PTTL ≤ ttl/2), the next hit
    // writes the binding again, with the full TTL.
    const short = sticky(t, client, 2000)
    const placed = await short.upstreamOf('192.0.2.1')
    await client.config('RESETSTAT')
    t.equal(await short.upstreamOf('192.0.2.1'), placed)
    t.same(await commandCalls(client), { get: 1 }, 'a hit within half the TTL: GET only')
    while (await client.pttl('affinity:stick:192.0.2.1') > 1000) await new Promise(resolve => setTimeout(resolve, 20))
    await client.config('RESETSTAT')
    t.equal(await short.upstreamOf('192.0.2.1'), placed, 'still bound past half the TTL')
    t.same(await commandCalls(client), { get: 1, set: 1 }, 'past half the TTL: GET + SET')
    const pttl = await client.pttl('affinity:stick:192.0.2.1')
    t.ok(pttl > 1000, `the SET refreshed the TTL (PTTL ${pttl})`)

    // A key Redis lost (deleted here; a restart without persistence) is written back at once.
    await client.del('affinity:stick:203.0.113.7')
    await client.config('RESETSTAT')
    t.equal(await long.upstreamOf('203.0.113.7'), first, 'kept by the instance')
    t.same(await commandCalls(client), { get: 1, set: 1 }, 'GET (miss) + SET: written back')
    t.equal(await client.get('affinity:stick:203.0.113.7'), first)
  })

  t.test('GETEX refused by an ACL although the server has it: plain GETs from then on, no outage', async t => {
    const server = await startRedisServer(t, bin)
    const admin = redisClient(t, server.port)
    await ready(admin)
    await admin.call('ACL', 'SETUSER', 'lb', 'on', '>lb-password', '~*', '+@all', '-getex')
    const client = redisClient(t, server.port, { username: 'lb', password: 'lb-password' })
    await ready(client)
    await t.rejects(client.getex('k', 'PX', 1000), /NOPERM/, 'this user may not run GETEX')
    const { store, upstreamOf } = sticky(t, client, 60_000)

    const first = await upstreamOf('203.0.113.7')
    // Hits until the store tried GETEX (the ACL log records the refusal) and went back to GET.
    let hits = 0
    while (((await admin.call('ACL', 'LOG')) as unknown[]).length === 0) {
      t.equal(await upstreamOf('203.0.113.7'), first, 'sticky', { diagnostic: false })
      if (++hits > 100) throw new Error('no GETEX tried after 100 hits')
    }
    t.equal(await upstreamOf('203.0.113.7'), first, 'the refused GETEX was answered with a GET')
    await admin.config('RESETSTAT')
    for (let i = 0; i < 10; i++) t.equal(await upstreamOf('203.0.113.7'), first, `hit ${i + 1}`, { diagnostic: false })
    t.same(await commandCalls(admin), { get: 10 }, 'plain GETs, within half the TTL no SET')
    t.match(store.stats(), { degraded: false, outages: 0, errors: 0 }, 'not an outage')
  })
}
