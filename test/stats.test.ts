import diagnosticsChannel from 'node:diagnostics_channel'
import t from 'tap'
import { createBalancer, roundRobin, stickyCookie, stickyIp, consistentHash, type OutcomeKind, type PickMessage } from '@affinity/core'
import { startCoreFront } from './helpers/core-front.js'
import { Browser, request, until } from './helpers/http.js'
import { deadUrl, startUpstreams } from './helpers/upstreams.js'

/** balancer.stats(), onOutcome() and the 'affinity:pick' decision trace, over real sockets. */

const SECRET = 'stats-test-secret-0123456789abcdef-0123456789'

t.test('stats(): outcomes by kind, picks by reason, state changes', async t => {
  const ups = await startUpstreams(2)
  const dead = await deadUrl()
  const balancer = createBalancer({
    upstreams: [{ url: ups[0]!.url, id: 'A' }, { url: ups[1]!.url, id: 'B' }, { url: dead, id: 'C' }],
    strategy: roundRobin(),
    passive: false,
    timeoutMs: 300,
  })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })

  for (let i = 0; i < 6; i++) t.equal((await request(`${front.url}/echo`)).status, 200)
  t.equal((await request(`${front.url}/status?code=404`)).status, 404)
  t.equal((await request(`${front.url}/status?code=503`)).status, 503)
  const before = balancer.stats()
  const byId = new Map(before.upstreams.map(u => [u.id, u]))
  // Round robin over A, B, C: every visit to C is refused and fails over (connect_error).
  t.ok(byId.get('C')!.outcomes.connect_error >= 2, 'refused connections counted on C')
  t.equal(byId.get('C')!.outcomes['2xx'], 0)
  const answered = (id: string): number => { const o = byId.get(id)!.outcomes; return o['2xx'] + o['4xx'] + o['5xx'] }
  t.equal(answered('A') + answered('B'), 8, 'every answer counted once, on the upstream that gave it')
  t.equal(before.upstreams.reduce((n, u) => n + u.outcomes['4xx'], 0), 1)
  t.equal(before.upstreams.reduce((n, u) => n + u.outcomes['5xx'], 0), 1)
  t.equal(before.picks.rotation, 8 + byId.get('C')!.outcomes.connect_error, 'one pick per request plus one per failover')
  t.equal(before.strategy, 'roundRobin')
  t.equal(before.panic, false)
  t.equal(byId.get('A')!.boundUsers, undefined, 'a stateless strategy binds nobody')

  // A request that times out.
  t.equal((await request(`${front.url}/hang`)).status, 504)
  const timeouts = balancer.stats().upstreams.reduce((n, u) => n + u.outcomes.timeout, 0)
  t.equal(timeouts, 1)

  // State changes are recorded, oldest first.
  void balancer.drain('B')
  balancer.add({ url: ups[1]!.url, id: 'D' })
  balancer.remove('D')
  const changes = balancer.stats().changes.map(c => `${c.upstream}:${c.from}→${c.to}`)
  t.same(changes, ['B:up→draining', 'D:absent→up', 'D:up→removed'])
  t.ok(balancer.stats().changes.every(c => typeof c.at === 'number' && c.reason.length > 0))

  // A copy, not a live view.
  const s = balancer.stats()
  s.upstreams[0]!.outcomes['2xx'] = -1
  t.not(balancer.stats().upstreams[0]!.outcomes['2xx'], -1)
})

t.test('stats(): health-check history and ejections', async t => {
  const ups = await startUpstreams(2)
  const balancer = createBalancer({
    upstreams: ups.map(u => ({ url: u.url, id: u.name })),
    health: { path: '/health', intervalMs: 30, fall: 1, rise: 1 },
    passive: { failures: 1, cooldownMs: 60_000 },
  })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  await until(() => balancer.stats().upstreams.every(u => u.health.checks >= 3), 5000, 'three checks each')
  ups[1]!.healthStatus = 500
  await until(() => balancer.stats().upstreams[1]!.state === 'down', 5000, 'S2 down')
  const s2 = balancer.stats().upstreams[1]!
  t.ok(s2.health.failed >= 1)
  t.equal(s2.health.checks, s2.health.passed + s2.health.failed)
  const last = s2.health.recent.at(-1)!
  t.equal(last.ok, false)
  t.equal(last.detail, 'answered 500')
  t.ok(s2.health.recent.length <= 20, 'a bounded history')
  t.match(balancer.stats().changes.at(-1), { upstream: 'S2', from: 'up', to: 'down', reason: 'health check answered 500' })

  ups[1]!.healthStatus = 200
  await until(() => balancer.stats().upstreams[1]!.state === 'up', 5000, 'S2 up')
  ups[0]!.failStatus = 502
  // Passive ejection of S1 on its first 502.
  for (let i = 0; i < 4 && !balancer.stats().upstreams[0]!.ejected; i++) await request(`${front.url}/echo`)
  const s1 = balancer.stats().upstreams[0]!
  t.equal(s1.ejected, true)
  t.equal(s1.ejectionsTotal, 1)
  t.equal(s1.state, 'down')
})

t.test('stats(): bound users for stickyCookie and stickyIp', async t => {
  const ups = await startUpstreams(3)
  const balancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: stickyCookie({ secret: SECRET }) })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  const users = Array.from({ length: 12 }, () => new Browser())
  for (const user of users) await user.get(`${front.url}/echo`)
  let s = balancer.stats()
  t.equal(s.upstreams.reduce((n, u) => n + u.boundUsers!, 0), 12, 'twelve users bound after their first visit')
  for (const user of users) await user.get(`${front.url}/echo`)
  s = balancer.stats()
  t.equal(s.upstreams.reduce((n, u) => n + u.boundUsers!, 0), 12, 'returning users are not counted twice')
  t.equal(s.picks.assigned, 12)
  t.equal(s.picks.sticky, 12)
  // Each upstream's count matches where its users were really served.
  for (const u of s.upstreams) {
    const served = new Set(ups.find(x => x.name === u.id)!.seen.map(r => r.headers.cookie))
    t.equal(u.boundUsers, served.size - (served.has(undefined) ? 1 : 0), `${u.id}: bound users = distinct cookies it served`)
  }

  const ipBalancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: stickyIp() })
  t.teardown(() => ipBalancer.close())
  for (let i = 0; i < 30; i++) ipBalancer.choose({ method: 'GET', url: '/', headers: {}, cookies: {}, ip: `203.0.113.${i}` })
  for (let i = 0; i < 30; i++) ipBalancer.choose({ method: 'GET', url: '/', headers: {}, cookies: {}, ip: `203.0.113.${i}` })
  const ipStats = ipBalancer.stats()
  t.equal(ipStats.upstreams.reduce((n, u) => n + u.boundUsers!, 0), 30)
  t.equal(ipStats.picks.sticky, 30)
  t.equal(ipStats.picks.assigned, 30)
})

t.test('onOutcome(): one call per attempt with its kind and duration; detachable', async t => {
  const ups = await startUpstreams(1)
  const dead = await deadUrl()
  const balancer = createBalancer({ upstreams: [{ url: dead, id: 'dead' }, { url: ups[0]!.url, id: 'live' }], strategy: roundRobin(), passive: false })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  const seen: Array<[string, OutcomeKind, number]> = []
  const off = balancer.onOutcome((u, kind, seconds) => seen.push([u.id, kind, seconds]))
  await request(`${front.url}/slow?ms=60`)
  await request(`${front.url}/slow?ms=60`)
  const kinds = seen.map(([id, kind]) => `${id}:${kind}`).sort()
  // Round robin alternates, so each request tries the dead upstream first, then fails over.
  t.same(kinds, ['dead:connect_error', 'dead:connect_error', 'live:2xx', 'live:2xx'])
  for (const [id, , seconds] of seen) if (id === 'live') t.ok(seconds >= 0.05 && seconds < 5, `timed: ${seconds} s`)
  off()
  await request(`${front.url}/echo`)
  t.equal(seen.length, 4, 'nothing after detaching')
})

t.test("decision trace on 'affinity:pick': reason and a keyed digest, never the raw key", async t => {
  const ups = await startUpstreams(3)
  const balancer = createBalancer({
    name: 'shop',
    upstreams: ups.map(u => ({ url: u.url, id: u.name })),
    strategy: consistentHash({ key: { header: 'x-user' } }),
  })
  const cookieBalancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: stickyCookie({ secret: SECRET }) })
  const front = await startCoreFront(balancer)
  const cookieFront = await startCoreFront(cookieBalancer)
  t.teardown(async () => {
    await front.close(); await cookieFront.close(); await balancer.close(); await cookieBalancer.close()
    await Promise.all(ups.map(u => u.close()))
  })
  const messages: PickMessage[] = []
  const listener = (m: unknown): void => { messages.push(m as PickMessage) }
  diagnosticsChannel.subscribe('affinity:pick', listener)
  await request(`${front.url}/echo`, { headers: { 'x-user': 'alex@example.com' } })
  await request(`${front.url}/echo`, { headers: { 'x-user': 'alex@example.com' } })
  await request(`${front.url}/echo`, { headers: { 'x-user': 'sam@example.com' } })
  await request(`${front.url}/echo`)
  const user = new Browser()
  await user.get(`${cookieFront.url}/echo`)
  await user.get(`${cookieFront.url}/echo`)
  diagnosticsChannel.unsubscribe('affinity:pick', listener)
  await request(`${front.url}/echo`, { headers: { 'x-user': 'alex@example.com' } })

  t.equal(messages.length, 6, 'one message per pick while subscribed, none after')
  const [a1, a2, s1, none, c1, c2] = messages
  t.match(a1, { balancer: 'shop', strategy: 'consistentHash', reason: 'hash', attempt: 1, method: 'GET' })
  t.ok(ups.some(u => u.name === a1!.upstream))
  t.match(a1!.key, /^[0-9a-f]{16}$/)
  t.equal(a1!.key, a2!.key, 'the same user, the same digest')
  t.not(a1!.key, s1!.key, 'another user, another digest')
  t.match(none, { reason: 'fallback', key: undefined })
  t.match(c1, { strategy: 'stickyCookie', reason: 'assigned', key: undefined, balancer: undefined })
  t.match(c2, { strategy: 'stickyCookie', reason: 'sticky' })
  t.match(c2!.key, /^[0-9a-f]{16}$/)
  const raw = JSON.stringify(messages)
  t.notOk(raw.includes('alex'), 'no user id in any message')
  t.notOk(raw.includes(user.cookie()!), 'no cookie value in any message')
})

t.test('the trace names a failover re-pick as a second attempt', async t => {
  const ups = await startUpstreams(1)
  const dead = await deadUrl()
  const balancer = createBalancer({ upstreams: [{ url: dead, id: 'dead' }, { url: ups[0]!.url, id: 'live' }], strategy: roundRobin(), passive: false })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  const messages: PickMessage[] = []
  const listener = (m: unknown): void => { messages.push(m as PickMessage) }
  diagnosticsChannel.subscribe('affinity:pick', listener)
  t.teardown(() => diagnosticsChannel.unsubscribe('affinity:pick', listener))
  for (let i = 0; i < 2; i++) t.equal((await request(`${front.url}/echo`)).status, 200)
  const toDead = messages.findIndex(m => m.upstream === 'dead')
  t.ok(toDead >= 0)
  t.match(messages[toDead + 1], { upstream: 'live', attempt: 2 })
})
