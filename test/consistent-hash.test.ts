/**
 * consistentHash and ipHash: rings, Maglev, successors and bounded loads (the properties every strategy shares are in
 * strategies.conformance.test.ts; helpers in test/strategies/conformance.ts).
 */
import t from 'tap'
import { consistentHash, ipHash } from '@affinity/core'
import { Upstream } from '@affinity/core/internal'
import { specs, Cluster, User, users, tally, ipOf, entry, FOUR, FIVE } from './strategies/fixtures.js'

t.test('consistentHash and ipHash', async t => {
  const e = entry('consistentHash ring')

  t.test('a request without the key goes to the fallback', t => {
    const c = new Cluster(t, consistentHash({ key: { header: 'x-user' } }), specs(...FOUR))
    const anon = new User(entry('roundRobin'), 0)
    const picks = Array.from({ length: 4 }, () => c.choose(anon))
    t.same(tally(picks.map(ch => ch.upstream?.id)), { a: 1, b: 1, c: 1, d: 1 }, 'round robin by default')
    t.ok(picks.every(ch => ch.reason === 'fallback'))
    const emptyKey = c.choose(new User(e, 0, { headers: { 'x-user': '' } }))
    t.equal(emptyKey.reason, 'fallback', 'an empty key counts as missing')
    const ip = new Cluster(t, ipHash(), specs(...FOUR))
    t.equal(ip.choose(new User(entry('ipHash'), 0, { ip: undefined })).reason, 'fallback', 'ipHash without an address')
    t.end()
  })

  t.test('header, cookie, query and function keys hash the same key alike', t => {
    const mk = (key: Parameters<typeof consistentHash>[0]['key']): Cluster => new Cluster(t, consistentHash({ key }), specs(...FIVE))
    const byH = mk({ header: 'X-User' })
    const byC = mk({ cookie: 'uid' })
    const byQ = mk({ query: 'uid' })
    const byF = mk(req => String(req.headers['x-fn'] ?? ''))
    let differ = 0
    for (let k = 0; k < 300; k++) {
      const key = `user ${k}/é`
      const h = byH.pick(new User(e, 0, { headers: { 'x-user': [key, 'second'] } }))
      const c = byC.pick(new User(e, 0, { cookies: { uid: key } }))
      const q = byQ.pick(new User(e, 0, { url: `/x?other=1&uid=${encodeURIComponent(key).replace(/%20/g, '+')}&uid=zzz` }))
      const f = byF.pick(new User(e, 0, { headers: { 'x-fn': key } }))
      if (h === undefined || h !== c || c !== q || q !== f) differ++
    }
    t.equal(differ, 0)
    t.end()
  })

  t.test('IPv4-mapped IPv6 folds; ipv4Prefix 24 groups a /24', t => {
    const plainIp = new Cluster(t, ipHash(), specs(...FOUR))
    const ipE = entry('ipHash')
    t.equal(Array.from({ length: 300 }, (_, k) => k).filter(k => plainIp.pick(new User(ipE, 0, { ip: ipOf(k) })) !== plainIp.pick(new User(ipE, 0, { ip: `::ffff:${ipOf(k)}` }))).length, 0)
    const c = new Cluster(t, ipHash({ ipv4Prefix: 24 }), specs(...FOUR))
    const groups = Array.from({ length: 40 }, (_, g) => new Set(Array.from({ length: 20 }, (_, h) => c.pick(new User(ipE, 0, { ip: `172.16.${g}.${h * 12}` })))))
    t.ok(groups.every(g => g.size === 1), 'one upstream per /24')
    t.equal(new Set(groups.map(g => [...g][0])).size, 4, '/24s spread over all upstreams')
    t.end()
  })

  t.test('bounded loads: no upstream above ceil(1.25 × average) in flight', t => {
    const factor = 1.25
    const c = new Cluster(t, consistentHash({ key: { header: 'x-user' }, balanceFactor: factor }), specs(...FIVE))
    const plainRing = new Cluster(t, consistentHash({ key: { header: 'x-user' } }), specs(...FIVE))
    const hot = new User(e, 7)
    const owner = c.pick(hot)
    t.equal(owner, plainRing.pick(hot), 'idle: the same owner as the plain ring')
    let over = 0
    const reasons = new Set<string>()
    const held: Upstream[] = []
    for (let i = 0; i < 200; i++) {
      const ch = c.choose(hot)
      const u = ch.upstream!
      reasons.add(ch.reason)
      u.inFlight++; c.totals.load++; held.push(u)
      if (u.load > Math.ceil(factor * c.totals.load / FIVE.length)) over++
    }
    t.equal(over, 0, 'a hot key never overloads one upstream')
    // 200 in flight, at most ceil(1.25 × 200 / 5) = 50 each: at least four upstreams share it.
    t.ok(new Set(held.map(u => u.id)).size >= 4, `it spills over ${new Set(held.map(u => u.id)).size} upstreams`)
    t.ok(reasons.has('spill') && reasons.has('hash'), `reasons ${[...reasons].join(',')}`)
    const max = Math.max(...held.map(u => u.load))
    t.ok(max <= Math.ceil(factor * 200 / 5), `busiest holds ${max} of 200`)
    for (const u of held) { u.inFlight--; c.totals.load-- }
    const back = c.choose(hot)
    t.ok(back.upstream?.id === owner && back.reason === 'hash', 'idle again: back to its owner')
    // Many keys in flight at once.
    let overMixed = 0
    for (const u of users(e, 1000, 5000)) {
      const up = c.choose(u).upstream!
      up.inFlight++; c.totals.load++
      if (up.load > Math.ceil(factor * c.totals.load / FIVE.length)) overMixed++
    }
    t.equal(overMixed, 0, 'never above the bound with 1,000 keys in flight')
    t.end()
  })
})

// ---------------------------------------------------------------------------
// Option validation: stable error codes
// ---------------------------------------------------------------------------
