/**
 * Overload through both adapters (README, "Overload"): maxInFlight and the FIFO
 * queue per upstream, its timeout and its limit, a client leaving while it waits,
 * who waits where (a bound user for their own upstream; stateless picks and new
 * users where there is room), maxWebSockets, and the retry budget. Upstreams hold
 * requests until the test releases them (held-upstream.ts); every wait is on an
 * arrival or on the balancer's books, never on time. Run per adapter by
 * overload.fastify.test.ts and overload.express.test.ts.
 */
import type { Test } from 'tap'
import type { WebSocket } from 'ws'
import {
  consistentHash, roundRobin, stickyCookie,
  type Balancer, type BalancerOptions, type Choice, type Members, type RouteRequest, type Strategy, type Upstream,
} from '@affinity/core'
import type { AdapterHarness } from './harness.js'
import { balancer as makeBalancer } from './scenarios.js'
import { startHeld, type HeldUpstream } from '../helpers/held-upstream.js'
import { Browser, openWebSocket, request, until, type RawResponse } from '../helpers/http.js'
import { deadUrl, startUpstreams } from '../helpers/upstreams.js'
import { RawClient } from './in-flight-rig.js'

const SECRET = 'overload-test-secret-0123456789abcdefghij'

interface Setup { b: Balancer, ups: HeldUpstream[], base: string, port: number }

async function setup (t: Test, h: AdapterHarness, names: readonly string[], opts: Omit<BalancerOptions, 'upstreams'>, limits: Record<string, number> = {}): Promise<Setup> {
  const ups = await startHeld(names)
  t.teardown(() => Promise.all(ups.map(u => u.close())))
  const b = makeBalancer(t, { upstreams: ups.map(u => ({ url: u.url, id: u.name, ...(limits[u.name] === undefined ? {} : { maxInFlight: limits[u.name] }) })), passive: false, ...opts })
  const app = await h.start(t, { source: { balancer: b } })
  return { b, ups, base: app.base, port: Number(new URL(app.url).port) }
}

const stat = (b: Balancer, id: string) => b.stats().upstreams.find(u => u.id === id)!
const queued = (b: Balancer, id: string): number => stat(b, id).queued

/** Sends a request now; its answer is awaited later. */
function send (url: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return request(url, { headers })
}

/** Checks a 503 of the balancer's own, JSON with Retry-After. */
function isOverload503 (t: Test, res: RawResponse, retryAfter: string, what: string): void {
  t.equal(res.status, 503, `${what}: 503`)
  t.equal(res.headers['retry-after'], retryAfter, `${what}: Retry-After ${retryAfter}`)
  t.match(res.json(), { statusCode: 503, error: 'Service Unavailable' }, `${what}: the JSON error`)
}

/** Nothing in flight or queued, and the upstream neither failed nor was ejected. */
async function booksBalance (t: Test, b: Balancer): Promise<void> {
  await until(() => b.list().every(u => u.inFlight === 0 && u.queued === 0), 5000, 'nothing in flight or queued')
  for (const u of b.stats().upstreams) {
    t.ok(u.failures === 0 && u.state === 'up', `${u.id}: never charged (failures ${u.failures}, ${u.state})`)
  }
}

/** A strategy that tries the upstreams in a fixed order: the first one not failed yet. */
function inOrder (ids: readonly string[]): Strategy {
  let members: Members | undefined
  return {
    name: 'inOrder',
    update (m: Members) { members = m },
    pick (_req: RouteRequest, choice: Choice): Upstream | undefined {
      for (const id of ids) {
        const u = members!.get(id)
        if (u !== undefined && !choice.avoids(u)) return u
      }
      return undefined
    },
  }
}

export function runOverload (t: Test, h: AdapterHarness): void {
  t.test(`${h.name}: requests beyond maxInFlight wait in FIFO order and are served as slots free`, async t => {
    const { b, ups: [a], base } = await setup(t, h, ['A'], { queue: { max: 10, timeoutMs: 30_000 } }, { A: 1 })
    const answers = [send(`${base}/hold?n=0`)]
    await a!.arrivals(1)
    for (let n = 1; n <= 3; n++) {
      answers.push(send(`${base}/hold?n=${n}`))
      await until(() => queued(b, 'A') === n, 5000, `request ${n} queued`)
    }
    t.same(a!.arrived, ['/hold?n=0'], 'only the first reached the upstream')
    t.equal(b.list()[0]!.inFlight, 1, 'one in flight: the limit')
    for (let n = 1; n <= 3; n++) {
      a!.release()
      await a!.arrivals(n + 1)
    }
    a!.release(1)
    t.same(a!.arrived, ['/hold?n=0', '/hold?n=1', '/hold?n=2', '/hold?n=3'], 'admitted in the order they came')
    t.same((await Promise.all(answers)).map(r => r.status), [200, 200, 200, 200], 'all served')
    t.equal(a!.maxConcurrent, 1, 'the upstream never had more than maxInFlight at once')
    await booksBalance(t, b)
    t.equal(stat(b, 'A').queueWait.count, 3, 'three waits counted')
  })

  t.test(`${h.name}: a full queue, or none, answers 503 at once, never charged to the upstream`, async t => {
    const { b, ups: [a], base } = await setup(t, h, ['A'], { queue: { max: 1, timeoutMs: 30_000 } }, { A: 1 })
    const first = send(`${base}/hold`)
    await a!.arrivals(1)
    const second = send(`${base}/hold?second`)
    await until(() => queued(b, 'A') === 1, 5000, 'the second request queued')
    isOverload503(t, await send(`${base}/echo`), '30', 'a third request with the queue full')
    t.equal(stat(b, 'A').outcomes.queue_full, 1, 'counted as queue_full')
    a!.release()
    await a!.arrivals(2)
    a!.release()
    t.same([(await first).status, (await second).status], [200, 200])
    await booksBalance(t, b)

    const none = await setup(t, h, ['N'], { maxInFlight: 1 })
    const held = send(`${none.base}/hold`)
    await none.ups[0]!.arrivals(1)
    isOverload503(t, await send(`${none.base}/echo`), '1', 'without a queue, a request beyond maxInFlight (the balancer-wide default)')
    t.equal(stat(none.b, 'N').outcomes.queue_full, 1)
    t.equal(stat(none.b, 'N').maxInFlight, 1, "the balancer-wide maxInFlight is the upstream's")
    none.ups[0]!.release()
    t.equal((await held).status, 200)
    await booksBalance(t, none.b)
  })

  t.test(`${h.name}: a request waits at most queue.timeoutMs, then gets 503 (queue_timeout)`, async t => {
    const { b, ups: [a], base } = await setup(t, h, ['A'], { queue: { max: 5, timeoutMs: 40 } }, { A: 1 })
    const first = send(`${base}/hold`)
    await a!.arrivals(1)
    const started = performance.now()
    const late = await send(`${base}/echo?late`)
    isOverload503(t, late, '1', 'a request that waited past timeoutMs')
    t.ok(performance.now() - started >= 39, 'it waited for the timeout first')
    t.equal(stat(b, 'A').outcomes.queue_timeout, 1, 'counted as queue_timeout')
    t.same(a!.arrived, ['/hold'], 'it never reached the upstream')
    a!.release()
    t.equal((await first).status, 200)
    await booksBalance(t, b)
  })

  t.test(`${h.name}: a client that leaves while it waits is dropped from the queue at once`, async t => {
    const { b, ups: [a], base, port } = await setup(t, h, ['A'], { queue: { max: 5, timeoutMs: 30_000 } }, { A: 1 })
    const first = send(`${base}/hold`)
    await a!.arrivals(1)
    const c = new RawClient(port)
    await c.write(`GET ${new URL(base).pathname}/echo?leaver HTTP/1.1\r\nHost: x\r\n\r\n`)
    await until(() => queued(b, 'A') === 1, 5000, 'the request queued')
    c.socket.destroy()
    await until(() => queued(b, 'A') === 0, 5000, 'the queue to let go of it')
    t.equal(stat(b, 'A').outcomes.aborted, 1, 'counted as aborted')
    t.equal(b.list()[0]!.inFlight, 1, 'the held request is still the only one in flight')
    a!.release()
    t.equal((await first).status, 200)
    await booksBalance(t, b)
    t.same(a!.arrived, ['/hold'], 'the leaver never reached the upstream')
  })

  t.test(`${h.name}: a sticky user waits for their own upstream; a new user goes where there is room`, async t => {
    const { b, ups, base } = await setup(t, h, ['A', 'B'], { strategy: stickyCookie({ secret: SECRET }), maxInFlight: 1, queue: { max: 5, timeoutMs: 30_000 } })
    const user = new Browser()
    const home = await user.visit(base)
    const own = ups.find(u => u.name === home)!
    const other = ups.find(u => u.name !== home)!
    const seenElsewhere = other.arrived.length
    const first = user.get(`${base}/hold?1`)
    await own.arrivals(2)
    const second = user.get(`${base}/hold?2`)
    await until(() => queued(b, own.name) === 1, 5000, "the user's second request to wait at its upstream")
    t.equal(other.arrived.length, seenElsewhere, 'not moved to the idle upstream')
    t.equal(await new Browser().visit(base), other.name, 'a new user is placed where there is room')
    own.release()
    await own.arrivals(3)
    own.release()
    t.same([(await first).status, (await second).status], [200, 200])
    t.same((await second).json().name, home, 'served by its own upstream')
    await booksBalance(t, b)

    // Hashed users too: a key waits for its own upstream.
    const hashed = await setup(t, h, ['H1', 'H2'], { strategy: consistentHash({ key: { header: 'x-user' } }), maxInFlight: 1, queue: { max: 5, timeoutMs: 30_000 } })
    const where = (await request(`${hashed.base}/echo`, { headers: { 'x-user': 'alice' } })).json().name as string
    const mine = hashed.ups.find(u => u.name === where)!
    const held = send(`${hashed.base}/hold`, { 'x-user': 'alice' })
    await mine.arrivals(2)
    const waiting = send(`${hashed.base}/echo`, { 'x-user': 'alice' })
    await until(() => queued(hashed.b, where) === 1, 5000, "alice's second request to wait at her upstream")
    mine.release()
    t.equal((await waiting).json().name, where, 'served by her own upstream once it had room')
    t.equal((await held).status, 200)
    await booksBalance(t, hashed.b)
  })

  t.test(`${h.name}: stateless picks go to upstreams with room first`, async t => {
    for (const weights of [[1, 1, 1], [3, 1, 1]]) {
      const ups = await startHeld(['A', 'B', 'C'])
      t.teardown(() => Promise.all(ups.map(u => u.close())))
      const b = makeBalancer(t, { upstreams: ups.map((u, i) => ({ url: u.url, id: u.name, weight: weights[i], maxInFlight: 1 })), strategy: roundRobin(), queue: { max: 5, timeoutMs: 30_000 } })
      const app = await h.start(t, { source: { balancer: b } })
      // The first pick of the rotation is A (the heaviest, or the first): it holds that one.
      const held = send(`${app.base}/hold`)
      await ups[0]!.arrivals(1)
      const served: string[] = []
      for (let i = 0; i < 8; i++) served.push((await request(`${app.base}/echo`)).json().name)
      t.notOk(served.includes('A'), `weights ${weights}: the rotation skipped the full upstream (${served.join(' ')})`)
      t.ok(served.includes('B') && served.includes('C'), 'and shared the rest')
      t.equal(b.stats().upstreams.reduce((n, u) => n + u.queueWait.count, 0), 0, 'nobody waited')
      ups[0]!.release()
      t.equal((await held).status, 200)
      await booksBalance(t, b)
    }
  })

  t.test(`${h.name}: maxWebSockets: a new user is placed elsewhere, a bound user gets 503`, async t => {
    const ups = await startUpstreams(2, 'W')
    t.teardown(() => Promise.all(ups.map(u => u.close())))
    // A weighted rotation places new users, which would put the first two on the heavier W1.
    const b = makeBalancer(t, {
      upstreams: ups.map((u, i) => ({ url: u.url, id: u.name, weight: i === 0 ? 3 : 1 })),
      strategy: stickyCookie({ secret: SECRET, assign: roundRobin() }),
      maxWebSockets: 1,
      passive: false,
    })
    const app = await h.start(t, { source: { balancer: b } })
    const wsBase = app.base.replace('http:', 'ws:')
    const sockets: WebSocket[] = []
    t.teardown(() => { for (const ws of sockets) ws.terminate() })
    const first = await openWebSocket(`${wsBase}/ws`)
    sockets.push(first.ws)
    const cookie = String(first.upgradeHeaders['set-cookie']).split(';')[0]!
    const second = await openWebSocket(`${wsBase}/ws`)
    sockets.push(second.ws)
    t.equal(first.hello.name, ups[0]!.name, 'the first user went where the rotation put it')
    t.not(second.hello.name, first.hello.name, 'a new user was placed on the upstream with room, not where the rotation would have put it')
    const refused = await openWebSocket(`${wsBase}/ws`, { cookie }).then(() => undefined, (err: { statusCode?: number, headers?: Record<string, string> }) => err)
    t.equal(refused?.statusCode, 503, 'a user bound to the full upstream gets 503')
    t.equal(refused?.headers?.['retry-after'], '1', 'with Retry-After')
    t.equal(stat(b, first.hello.name).outcomes.websockets_full, 1, 'counted as websockets_full')
    t.equal((await request(`${app.base}/echo`, { headers: { cookie } })).json().name, first.hello.name, 'plain requests are not limited by maxWebSockets')
    first.ws.close()
    await until(() => stat(b, first.hello.name).websockets === 0, 5000, 'the tunnel to close')
    const again = await openWebSocket(`${wsBase}/ws`, { cookie })
    sockets.push(again.ws)
    t.equal(again.hello.name, first.hello.name, 'once it closed, the bound user gets their upstream back')
    t.equal(stat(b, first.hello.name).failures, 0, 'never charged')
  })

  t.test(`${h.name}: retry budget: failovers beyond it are not made; a retry waits like any request`, async t => {
    const dead = await deadUrl()
    const [hold] = await startHeld(['H'])
    t.teardown(() => hold!.close())
    const b = makeBalancer(t, {
      upstreams: [{ url: dead, id: 'D' }, { url: hold!.url, id: 'H', maxInFlight: 1 }],
      strategy: inOrder(['D', 'H']),
      passive: false,
      queue: { max: 5, timeoutMs: 30_000 },
      retryBudget: { percent: 0, min: 2 },
    })
    const app = await h.start(t, { source: { balancer: b } })
    const r0 = send(`${app.base}/hold?0`)
    await hold!.arrivals(1)
    const r1 = send(`${app.base}/hold?1`)
    await until(() => queued(b, 'H') === 1, 5000, 'the second failover to wait for H')
    t.same(b.stats().retries, { made: 2, refused: 0 }, 'two retries under way: the budget (min 2)')
    const r2 = await send(`${app.base}/hold?2`)
    t.equal(r2.status, 502, 'a third failover is not made: the client gets the error')
    t.same(b.stats().retries, { made: 2, refused: 1 }, 'the refusal is counted')
    hold!.release()
    await hold!.arrivals(2)
    hold!.release()
    t.same([(await r0).status, (await r1).status], [200, 200], 'the retries within the budget were served')
    const r3 = send(`${app.base}/hold?3`)
    await hold!.arrivals(3)
    t.same(b.stats().retries, { made: 3, refused: 1 }, 'the budget is free again once the retries ended')
    hold!.release()
    t.equal((await r3).status, 200)
    t.same(hold!.arrived, ['/hold?0', '/hold?1', '/hold?3'])
    t.equal(hold!.maxConcurrent, 1, 'H never had more than maxInFlight')
  })
}
