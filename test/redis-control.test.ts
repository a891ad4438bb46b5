/**
 * redisControl against a real redis-server (started per test on a free loopback
 * port): operations reach every balancer attached under one name, the state is
 * stored with versions, a new instance starts from it, a partitioned instance keeps
 * working and is reconciled by compare-and-set, views expire. Balancers here run in
 * this process; test/redis-control-fleet.test.ts runs them as separate processes.
 *
 * Without redis-server on PATH the file is skipped, unless AFFINITY_REQUIRE_REDIS=1.
 */
import t, { type Test } from 'tap'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { affinity } from '@affinity/express'
import { redisControl } from '@affinity/redis'
import { request } from './helpers/http.js'
import { createBalancer, roundRobin } from '@affinity/core'
import { attached, manualSource, nextEvent, upstreamEvent } from './helpers/control.js'
import { findRedisServer, ready, redisClient, startRedisServer } from './helpers/redis.js'
import { startRelay } from './helpers/relay.js'
import { startUpstreams } from './helpers/upstreams.js'

const bin = findRedisServer()
if (bin !== undefined) {
  tests(bin)
} else if (process.env.AFFINITY_REQUIRE_REDIS === '1') {
  t.fail('redis-server is not on PATH, and AFFINITY_REQUIRE_REDIS=1 requires it (.ci/run installs it)')
} else {
  t.plan(0, 'redis-server not installed; .ci/run installs it')
}

async function upstreams (t: Test): Promise<Array<{ id: string, url: string }>> {
  const ups = await startUpstreams(3)
  t.teardown(() => Promise.all(ups.map(u => u.close())))
  return ups.map(u => ({ id: u.name, url: u.url }))
}

function tests (bin: string): void {
  t.test('options: unknown, missing or unsafe ones are refused with stable codes', async t => {
    const server = await startRedisServer(t, bin)
    const client = redisClient(t, server.port)
    t.throws(() => redisControl({ client, name: 'shop', reportMS: 10 } as never), { code: 'AFFINITY_ERR_UNKNOWN_OPTION' })
    t.throws(() => redisControl({ client, name: '' }), { code: 'AFFINITY_ERR_INVALID_OPTION' })
    t.throws(() => redisControl({ client, name: 'a{b}' }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /hash tag/ })
    t.throws(() => redisControl({ client: {} as never, name: 'shop' }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /ioredis/ })
    t.throws(() => redisControl({ client, name: 'shop', reportMs: 1000, viewTtlMs: 1000 }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /viewTtlMs/ })
    t.throws(() => redisControl({ client, name: 'shop', timeoutMs: 0 }), { code: 'AFFINITY_ERR_INVALID_OPTION' })
    const control = redisControl({ client, name: 'shop' })
    await t.rejects(control.setWeight('S1', -1), { code: 'AFFINITY_ERR_INVALID_WEIGHT' })
    await t.rejects(control.add({ url: 'ftp://x' }), { code: 'AFFINITY_ERR_INVALID_URL' })
    await t.rejects(control.attach({} as never), { code: 'AFFINITY_ERR_INVALID_OPTION' })
  })

  t.test('drain, undrain, weight, add and remove on one balancer reach the others; the state is stored once per operation', async t => {
    const server = await startRedisServer(t, bin)
    const ups = await upstreams(t)
    const a = await attached(t, server.port, { name: 'shop', upstreams: ups })
    const b = await attached(t, server.port, { name: 'shop', upstreams: ups })
    const other = await attached(t, server.port, { name: 'other', upstreams: ups })
    const watch = redisClient(t, server.port)

    const drained = upstreamEvent(b.balancer, 'draining', 'S2')
    void a.balancer.drain('S2')
    await drained
    t.equal(b.info('S2')!.state, 'draining', 'drained on B')
    // Applying it on B published nothing: B's own client would have sent that write before this read.
    t.same(await b.control.state(), { epoch: (await a.control.state()).epoch, version: 1, upstreams: { S2: { version: 1, drained: true } } }, 'one operation, one version')
    t.equal(other.info('S2')!.state, 'up', 'a control under another name is not affected')
    t.equal(await watch.exists('affinity:control:{shop}'), 1, 'the state hash carries the {name} hash tag')

    const weighted = upstreamEvent(b.balancer, 'weight', 'S1')
    a.balancer.setWeight('S1', 0.3333333333333333)
    await weighted
    t.equal(b.info('S1')!.weight, 0.3333333333333333, 'a weight crosses Redis exactly (no 14-digit rounding in Lua)')

    const undrained = upstreamEvent(a.balancer, 'undrained', 'S2')
    b.balancer.undrain('S2')
    await undrained
    t.equal(a.info('S2')!.state, 'up', 'undrained on A, from B')

    const added = upstreamEvent(b.balancer, 'added', 'S4')
    a.balancer.add({ id: 'S4', url: ups[0]!.url.replace('127.0.0.1', 'localhost'), weight: 2 })
    const [info] = await added
    t.same([info.id, info.weight], ['S4', 2], 'added on B with its weight')
    const removed = upstreamEvent(a.balancer, 'removed', 'S3')
    b.balancer.remove('S3')
    await removed
    t.equal(a.info('S3'), undefined, 'removed on A, from B')

    const state = await a.control.state()
    t.equal(state.version, 5, 'five operations, five versions')
    t.same(state.upstreams.S3, { version: 5, removed: true })
    t.same(state.upstreams.S4, { version: 4, url: ups[0]!.url.replace('127.0.0.1', 'localhost'), weight: 2 })
    t.same(state.upstreams.S2, { version: 3, drained: false })

    t.test('a balancer attached later starts from the stored state before attach() resolves', async t => {
      const c = await attached(t, server.port, { name: 'shop', upstreams: ups })
      t.same(c.balancer.list().map(u => [u.id, u.state, u.weight]).sort(), [['S1', 'up', 0.3333333333333333], ['S2', 'up', 1], ['S4', 'up', 2]])
    })

    t.test('the CLI path: an operation sent by a control with no balancer reaches every attached one', async t => {
      const cli = redisControl({ client: redisClient(t, server.port), name: 'shop' })
      const onA = upstreamEvent(a.balancer, 'draining', 'S1')
      const onB = upstreamEvent(b.balancer, 'draining', 'S1')
      const entry = await cli.drain('S1')
      t.same(entry, { version: 6, drained: true, weight: 0.3333333333333333 })
      await Promise.all([onA, onB])
      t.equal((await cli.state()).version, 6, 'applied by both, published by neither')
    })
  })

  t.test('views: each attached instance reports under a key with a TTL; detach deletes it, a silent one expires', async t => {
    const server = await startRedisServer(t, bin)
    const ups = await upstreams(t)
    const a = await attached(t, server.port, { name: 'shop', upstreams: ups, control: { id: 'bal-a', reportMs: 100, viewTtlMs: 400 } })
    const b = await attached(t, server.port, { name: 'shop', upstreams: ups, control: { id: 'bal-b', reportMs: 100, viewTtlMs: 400 } })
    await Promise.all([nextEvent(a.control, 'reported'), nextEvent(b.control, 'reported')])
    const cli = redisControl({ client: redisClient(t, server.port), name: 'shop' })
    const live = await cli.instances()
    t.same(live.map(i => i.id), ['bal-a', 'bal-b'])
    const view = live[0]!
    t.same(view.upstreams.map(u => u.id), ['S1', 'S2', 'S3'])
    t.match(view.upstreams[0], { url: ups[0]!.url, weight: 1, state: 'up', inFlight: 0, websockets: 0, boundUsers: null })
    t.ok(view.ageMs >= 0 && view.ageMs <= view.viewTtlMs, `age from Redis's own clock (${view.ageMs} ms)`)
    t.match(view, { online: true, reportMs: 100, viewTtlMs: 400, version: 0 })

    await b.control.detach()
    t.same((await cli.instances()).map(i => i.id), ['bal-a'], 'detached: its view is gone at once')

    // A crashed instance stops reporting without detaching: its view expires with its TTL.
    const silent = await attached(t, server.port, { name: 'shop', upstreams: ups, control: { id: 'bal-c', reportMs: 100, viewTtlMs: 400 } })
    await nextEvent(silent.control, 'reported')
    t.same((await cli.instances()).map(i => i.id), ['bal-a', 'bal-c'])
    silent.client.disconnect() // its reports stop (the control sends nothing on a client that is not ready)
    let ids = (await cli.instances()).map(i => i.id)
    const gone = Date.now()
    while (ids.includes('bal-c')) {
      if (Date.now() - gone > 10_000) throw new Error('the silent view did not expire')
      await new Promise(resolve => setTimeout(resolve, 50))
      ids = (await cli.instances()).map(i => i.id)
    }
    t.same(ids, ['bal-a'], 'expired with its TTL, and dropped from the set')
    t.equal(await redisClient(t, server.port).zcard('affinity:control:{shop}:views'), 1)
  })

  t.test('partition: a cut-off instance keeps working; back, its changes are compare-and-set: kept if nobody wrote since, else the stored state wins', async t => {
    const server = await startRedisServer(t, bin)
    const ups = await upstreams(t)
    const relay = await startRelay(t, server.port)
    const a = await attached(t, server.port, { name: 'shop', upstreams: ups })
    const c = await attached(t, relay.port, { name: 'shop', upstreams: ups, control: { id: 'c', timeoutMs: 500 } })

    const offline = nextEvent(c.control, 'offline')
    relay.cut()
    await offline
    t.equal(c.control.online, false)

    // Cut off, C's operations apply locally and reach nobody.
    c.balancer.setWeight('S1', 5)
    void c.balancer.drain('S3')
    t.equal(c.info('S1')!.weight, 5, 'applied on C')
    t.equal(c.info('S3')!.state, 'draining', 'applied on C')
    // Meanwhile A (still connected) writes S1: a later operation than the one C based its change on.
    const stored = nextEvent(a.control, 'applied', (id: string) => id === 'S1')
    a.balancer.setWeight('S1', 9)
    await stored
    t.equal(a.info('S3')!.state, 'up', 'C\'s drain did not reach A during the cut')

    const conflict = nextEvent<[{ upstream: string }]>(c.control, 'conflict')
    const s3 = upstreamEvent(a.balancer, 'draining', 'S3')
    const synced = nextEvent(c.control, 'synced')
    relay.restore()
    const [detail] = await conflict
    t.match(detail, { upstream: 'S1', local: { weight: 5 }, stored: { weight: 9 } }, 'S1: the stored weight was written after what C knew: it wins')
    await synced
    await s3
    t.equal(c.info('S1')!.weight, 9, 'C follows the stored weight')
    t.equal(a.info('S3')!.state, 'draining', 'S3: nobody wrote it since; C\'s drain is stored and reaches A')
    const state = await a.control.state()
    t.same(state.upstreams.S1, { version: 1, weight: 9 })
    t.same(state.upstreams.S3, { version: 2, drained: true })
  })

  t.test('a lazyConnect client is connected by attach', async t => {
    const server = await startRedisServer(t, bin)
    const ups = await upstreams(t)
    const a = await attached(t, server.port, { name: 'shop', upstreams: ups, redis: { lazyConnect: true } })
    t.equal(a.control.online, true, 'attached and in step')
    t.equal(a.client.status, 'ready')
  })

  t.test('balancers following a membership source: its changes are neither published nor kept; operator state meets members as they come and is forgotten as they go', async t => {
    const server = await startRedisServer(t, bin)
    const ups = await upstreams(t)
    const list = ups.map(u => ({ id: u.id, url: u.url }))
    const sources = [manualSource(), manualSource()]
    const [a, b] = await Promise.all(sources.map(async (source, i) => {
      const balancer = createBalancer({ upstreams: source, strategy: roundRobin(), removeGraceMs: 60_000, drainIdleMs: 0 })
      t.teardown(() => balancer.close())
      source.set(list)
      await balancer.ready()
      const control = redisControl({ client: redisClient(t, server.port), name: 'shop', id: `src-${i}` })
      t.teardown(() => control.close())
      await control.attach(balancer)
      return { balancer, control, info: (id: string) => balancer.list().find(u => u.id === id) }
    }))
    const cli = redisControl({ client: redisClient(t, server.port), name: 'shop' })

    // S1 leaves A's source: A drains it (reason 'discovery'); nothing is stored or sent.
    const leaving = upstreamEvent(a!.balancer, 'draining', 'S1')
    sources[0]!.set(list.slice(1))
    t.equal((await leaving)[1], 'discovery')
    const operator = upstreamEvent(b!.balancer, 'draining', 'S2')
    void a!.balancer.drain('S2')
    await operator
    t.same(Object.keys((await cli.state()).upstreams), ['S2'], 'only the operator\'s drain is stored')
    t.equal(b!.info('S1')!.state, 'up', 'B still has S1 up: each instance follows its own source')

    // An operator drains S4 before any instance has it: it is stored; a member S4 that a source adds later arrives drained.
    await cli.drain('S4')
    const s4 = { id: 'S4', url: ups[2]!.url.replace('127.0.0.1', 'localhost') }
    const added = upstreamEvent(b!.balancer, 'added', 'S4')
    const drained = upstreamEvent(b!.balancer, 'draining', 'S4')
    sources[1]!.set([...list, s4])
    t.equal((await added)[1], 'discovery')
    await drained
    t.equal(b!.info('S4')!.state, 'draining', 'the stored drain met the new member')

    // S3's address changes under its id: the source replaces it (removed and added in one
    // batch); the operator's weight for S3 is not forgotten.
    const weighted = upstreamEvent(b!.balancer, 'weight', 'S3')
    a!.balancer.setWeight('S3', 3)
    await weighted
    const replaced = upstreamEvent(b!.balancer, 'added', 'S3')
    sources[1]!.set([...list.slice(0, 2), { id: 'S3', url: ups[2]!.url.replace('127.0.0.1', '[::ffff:127.0.0.1]') }, s4])
    await replaced
    const synced = upstreamEvent(a!.balancer, 'undrained', 'S2')
    b!.balancer.undrain('S2') // an operation after the batch: any forget B sent is in Redis before it
    await synced
    t.match((await cli.state()).upstreams.S3, { weight: 3 }, 'S3\'s operator state survived the replacement')

    // S4 leaves B's source and is removed once idle: its stored drain is forgotten, so an
    // address reused later starts afresh.
    const forgotten = nextEvent(b!.control, 'forgotten')
    sources[1]!.set(list)
    t.same(await forgotten, ['S4'])
    t.same(Object.keys((await cli.state()).upstreams).sort(), ['S2', 'S3'], 'S4 forgotten in Redis')
  })

  t.test('Express lb.admin() over an attached balancer: a drain through it applies on every instance', async t => {
    const server = await startRedisServer(t, bin)
    const ups = await upstreams(t)
    const a = await attached(t, server.port, { name: 'shop', upstreams: ups })
    const b = await attached(t, server.port, { name: 'shop', upstreams: ups })
    const lb = affinity({ balancer: a.balancer })
    const app = express()
    app.use('/ops', lb.admin())
    app.use(lb)
    const http = app.listen(0, '127.0.0.1')
    await once(http, 'listening')
    t.teardown(async () => { await lb.close(); http.closeAllConnections(); http.close() })
    const drained = upstreamEvent(b.balancer, 'draining', 'S3')
    const res = await request(`http://127.0.0.1:${(http.address() as AddressInfo).port}/ops/drain/S3`, { method: 'POST' })
    t.equal(res.status, 202)
    await drained
    t.equal(b.info('S3')!.state, 'draining', 'drained on the other instance')
  })
}
