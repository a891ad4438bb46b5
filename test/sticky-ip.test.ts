/**
 * stickyIp: the stick table, IP folding and the store contract (the properties every strategy shares are in
 * strategies.conformance.test.ts; helpers in test/strategies/conformance.ts).
 */
import t from 'tap'
import { memoryStickStore, stickyIp } from '@affinity/core'
import { specs, Cluster, User, users, tally, ipOf, entry, FOUR } from './strategies/fixtures.js'

t.test('stickyIp', async t => {
  const e = entry('stickyIp')
  const at = (ip: string | undefined): User => new User(e, 0, { ip })

  t.test('IPv4-mapped IPv6 and plain IPv4 are the same client', t => {
    const c = new Cluster(t, stickyIp(), specs(...FOUR))
    let differ = 0
    for (let k = 0; k < 200; k++) {
      const first = c.choose(at(`::ffff:${ipOf(k)}`))
      const second = c.choose(at(ipOf(k)))
      const third = c.choose(at(`[::FFFF:${ipOf(k)}]`))
      if (second.upstream !== first.upstream || second.reason !== 'sticky' || third.upstream !== first.upstream) differ++
    }
    t.equal(differ, 0)
    t.end()
  })

  t.test('ipv4Prefix 24 groups a /24; ipv6 /64 by default', t => {
    const c = new Cluster(t, stickyIp({ ipv4Prefix: 24 }), specs(...FOUR))
    const groups = Array.from({ length: 8 }, (_, g) => Array.from({ length: 30 }, (_, h) => c.pick(at(`192.0.${g}.${h + 1}`))))
    t.ok(groups.every(g => new Set(g).size === 1), 'one upstream per /24')
    t.equal(new Set(groups.map(g => g[0])).size, 4, 'different /24s are different clients')
    const v6 = new Cluster(t, stickyIp(), specs(...FOUR))
    const home = v6.pick(at('2001:db8:1:2::1'))
    t.same(['2001:db8:1:2:aaaa::7', '2001:DB8:1:2:ffff:ffff:ffff:ffff', '[2001:db8:1:2::99]', '2001:db8:1:2::5%eth0'].map(ip => v6.pick(at(ip))), [home, home, home, home])
    t.end()
  })

  t.test('no usable address: assigned, not bound', t => {
    const c = new Cluster(t, stickyIp(), specs(...FOUR))
    for (const ip of [undefined, '', 'unknown', '300.1.1.1']) {
      t.same(tally(Array.from({ length: 4 }, () => c.pick(at(ip)))), { a: 1, b: 1, c: 1, d: 1 }, `ip ${String(ip)} rotates`)
    }
    t.equal(c.choose(at(undefined)).reason, 'assigned')
    t.end()
  })

  t.test('a shared store lets two instances agree', t => {
    const store = memoryStickStore()
    const A = new Cluster(t, stickyIp({ store }), specs(...FOUR))
    const B = new Cluster(t, stickyIp({ store }), specs(...[...FOUR].reverse()))
    const us = users(e, 300)
    const placed = us.map(u => A.pick(u))
    const seen = us.map(u => B.choose(u))
    t.equal(seen.filter((ch, i) => ch.upstream?.id !== placed[i] || ch.reason !== 'sticky').length, 0)
    t.end()
  })

  t.test('each hit refreshes the TTL; an idle client is forgotten', async t => {
    // Real time: the in-memory store keeps its own monotonic clock (lru-cache).
    const c = new Cluster(t, stickyIp({ ttlMs: 300 }), specs(...FOUR))
    const u = at('198.51.100.7')
    const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
    t.equal(c.choose(u).reason, 'assigned')
    await sleep(200)
    t.equal(c.choose(u).reason, 'sticky', 'within the TTL')
    await sleep(200)
    t.equal(c.choose(u).reason, 'sticky', 'the previous hit refreshed it (400 ms after the first)')
    await sleep(450)
    t.equal(c.choose(u).reason, 'assigned', 'idle longer than the TTL: forgotten')
  })

  t.test('memoryStickStore: bounded, least recently refreshed first', t => {
    const s = memoryStickStore({ maxEntries: 3 })
    s.set('a', 'x', 60_000); s.set('b', 'x', 60_000); s.set('c', 'x', 60_000)
    s.set('a', 'y', 60_000) // refreshed: now the newest
    s.set('d', 'x', 60_000)
    t.same(['a', 'b', 'c', 'd'].map(k => s.get(k)), ['y', undefined, 'x', 'x'])
    t.end()
  })
})
