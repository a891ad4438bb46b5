/**
 * Slow start (`slowStartMs`, src/balancer/slow-start.ts): an added upstream, or one
 * back up from down, ramps its effective weight from 10% to 100% over the window,
 * in steps (one snapshot each, a 'slow-start' event for each), never at the
 * balancer's start. roundRobin, leastConnections and sticky placement share out by
 * the effective weight; hash strategies keep their key mapping, and their
 * bounded-load cap follows the effective weight.
 */
import { once } from 'node:events'
import t, { type Test } from 'tap'
import {
  consistentHash, createBalancer, leastConnections, roundRobin, stickyCookie, stickyIp,
  type Balancer, type Choice, type RouteRequest, type Strategy, type UpstreamInfo,
} from '@affinity/core'
import { rampFactor, SLOW_START_STEPS } from '@affinity/core/internal'
import { startUpstreams } from './helpers/upstreams.js'

const SECRET = 'slow-start-test-secret-0123456789abcdefghijk'
const THREE = ['a', 'b', 'c'].map(id => ({ id, url: `http://127.0.0.1:9/${id}` }))
const NEW = { id: 'new', url: 'http://127.0.0.1:9/new' }

const req = (i: number): RouteRequest => ({ method: 'GET', url: '/', headers: { 'x-user': `user-${i}` }, ip: `10.0.${i >> 8}.${i & 255}`, cookies: {} })

function balancer (t: Test, strategy: Strategy, slowStartMs: number): Balancer {
  const b = createBalancer({ upstreams: THREE, strategy, slowStartMs, passive: false })
  t.teardown(() => b.close())
  // The ramp's timer is unref'd (it must not hold an app open): with no socket open
  // here, this keeps the process alive while a test waits for the ramp's events.
  const alive = setInterval(() => {}, 60_000)
  t.teardown(() => clearInterval(alive))
  return b
}

/** How many of `n` new requests (chosen, not forwarded: no load) go to `id`. */
async function share (b: Balancer, id: string, n: number, from = 0): Promise<number> {
  let k = 0
  for (let i = from; i < from + n; i++) if ((await b.choose(req(i))).upstream?.id === id) k++
  return k
}

t.test('the ramp: a straight line from 10% at the start to 100% at the end of the window', async t => {
  t.equal(rampFactor(0, 1000), 0.1)
  t.equal(rampFactor(-5, 1000), 0.1, 'never below 10%')
  t.equal(rampFactor(500, 1000), 0.55)
  t.equal(rampFactor(1000, 1000), 1)
  t.equal(rampFactor(5000, 1000), 1)
  t.equal(SLOW_START_STEPS, 10)
})

t.test('an added upstream ramps in steps, each a slow-start event and a snapshot; none at the start; off by default', async t => {
  const b = balancer(t, roundRobin(), 400)
  const steps: number[] = []
  b.on('slow-start', (u, w) => { if (u.id === 'new') steps.push(w) })
  t.same(b.stats().upstreams.map(u => u.effectiveWeight), [1, 1, 1], 'the first membership takes traffic as it is')
  const done = new Promise<void>(resolve => b.on('slow-start', (u, w) => { if (w === u.weight) resolve() }))
  const version = b.members.version
  b.add({ ...NEW, weight: 2 })
  // 10% of 2, plus what the ramp gained between add() and the snapshot (microseconds).
  t.ok(steps[0]! >= 0.2 && steps[0]! < 0.21, `from 10% of its weight, with the snapshot that admits it (${steps[0]})`)
  t.equal(b.stats().upstreams.find(u => u.id === 'new')!.effectiveWeight, steps[0], 'stats() shows the effective weight')
  t.equal(b.list().find(u => u.id === 'new')!.weight, 2, 'the configured weight is unchanged')
  await done
  t.equal(steps.at(-1), 2, 'to 100%')
  t.ok(steps.every((w, i) => i === 0 || w > steps[i - 1]!), `rising at every step: ${steps.map(w => w.toFixed(2)).join(' ')}`)
  t.ok(steps.length >= 3 && steps.length <= SLOW_START_STEPS + 2, `about ${SLOW_START_STEPS} steps (${steps.length})`)
  t.equal(b.members.version, version + steps.length, 'one snapshot per step')
  t.equal(b.stats().upstreams.find(u => u.id === 'new')!.effectiveWeight, 2)

  const off = balancer(t, roundRobin(), 0)
  let events = 0
  off.on('slow-start', () => { events++ })
  off.add(NEW)
  t.equal(events, 0)
  t.same(off.stats().upstreams.map(u => u.effectiveWeight), [1, 1, 1, 1], 'slowStartMs 0: full weight at once')
})

t.test('roundRobin, leastConnections and sticky placement share new users by the effective weight', async t => {
  // A 60 s window: no step happens during these synchronous picks, so the new one weighs 0.1 of 3.1.
  const strategies: Array<[string, () => Strategy]> = [
    ['roundRobin', () => roundRobin()],
    ['leastConnections', () => leastConnections()],
    ['stickyCookie', () => stickyCookie({ secret: SECRET })],
    ['stickyIp', () => stickyIp()],
  ]
  for (const [name, make] of strategies) {
    const ramping = balancer(t, make(), 60_000)
    const full = balancer(t, make(), 0)
    ramping.add(NEW)
    full.add(NEW)
    const slow = await share(ramping, 'new', 310)
    const fast = await share(full, 'new', 310)
    t.ok(slow >= 9 && slow <= 11, `${name}: ${slow} of 310 new users (0.1 / 3.1 of them)`)
    t.ok(fast >= 77 && fast <= 78, `${name} without slow start: ${fast} of 310 (a quarter)`)
  }
})

t.test('hash strategies keep their key mapping during a ramp; their bounded-load cap follows the effective weight', async t => {
  for (const algorithm of ['ring', 'maglev'] as const) {
    const ramping = balancer(t, consistentHash({ key: { header: 'x-user' }, algorithm }), 60_000)
    const full = balancer(t, consistentHash({ key: { header: 'x-user' }, algorithm }), 0)
    ramping.add(NEW)
    full.add(NEW)
    const keys = Array.from({ length: 2000 }, (_, i) => i)
    const a = await Promise.all(keys.map(async i => (await ramping.choose(req(i))).upstream!.id))
    const b = await Promise.all(keys.map(async i => (await full.choose(req(i))).upstream!.id))
    t.same(a, b, `${algorithm}: every key maps as without slow start`)
    t.ok(a.filter(id => id === 'new').length > 300, `${algorithm}: the new upstream has its keys at once (${a.filter(id => id === 'new').length})`)
  }

  // Bounded loads, 1.25: with 4 in flight, slots = ceil(5 × 1.25) = 7; the new upstream's cap is
  // ceil(7 × 1 / 4) = 2 at full weight, ceil(7 × 0.1 / 3.1) = 1 while it ramps.
  for (const [slowStartMs, expected] of [[60_000, 'spill'], [0, 'hash']] as const) {
    const b = balancer(t, consistentHash({ key: { header: 'x-user' }, balanceFactor: 1.25 }), slowStartMs)
    b.add(NEW)
    let key = 0
    while ((b.choose(req(key)) as Choice).upstream!.id !== 'new') key++
    const u = b.members.get('new')!
    u.inFlight = 1
    b.members.totals.load = 4
    const choice = b.choose(req(key)) as Choice
    u.inFlight = 0
    b.members.totals.load = 0
    t.equal(choice.reason, expected, slowStartMs === 0 ? 'at full weight one request in flight leaves room' : 'while it ramps one request in flight fills its cap: the key spills')
  }
})

t.test('an upstream back up from down ramps again', async t => {
  const ups = await startUpstreams(2)
  t.teardown(() => Promise.all(ups.map(u => u.close())))
  const b = createBalancer({
    upstreams: ups.map(u => ({ id: u.name, url: u.url })),
    strategy: roundRobin(),
    health: { path: '/health', intervalMs: 30, timeoutMs: 1000, rise: 1, fall: 1 },
    slowStartMs: 60_000,
  })
  t.teardown(() => b.close())
  let ramps = 0
  b.on('slow-start', () => { ramps++ })
  ups[1]!.healthStatus = 500
  const [down] = await once(b, 'down') as [UpstreamInfo]
  t.equal(down.id, 'S2')
  t.equal(ramps, 0, 'no ramp at the start, nor on the way down')
  ups[1]!.healthStatus = 200
  const [info, weight] = await once(b, 'slow-start') as [UpstreamInfo, number]
  t.equal(info.id, 'S2')
  t.equal(info.state, 'up')
  t.ok(weight >= 0.1 && weight < 0.2, `from 10% (${weight})`)
  t.same(b.stats().upstreams.map(u => `${u.id}:${u.effectiveWeight < 0.2 ? 'ramping' : u.effectiveWeight}`), ['S1:1', 'S2:ramping'])
})
