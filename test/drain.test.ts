/**
 * Drain completion with an idle window (`drain(id, { idleMs })`, `drainIdleMs`):
 * the drain resolves, and 'drained' is emitted, once nothing is in flight, no
 * WebSocket is open and no bound user has come back for idleMs. Real upstreams on
 * 127.0.0.1:0 behind the core front, browsers with cookie jars.
 */
import t, { type Test } from 'tap'
import { AffinityError, createBalancer, stickyCookie, stickyIp, type Balancer, type BalancerOptions } from '@affinity/core'
import { startCoreFront } from './helpers/core-front.js'
import { Browser, delay, openWebSocket, request, until } from './helpers/http.js'
import { startUpstreams } from './helpers/upstreams.js'

const SECRET = 'drain-test-secret-0123456789abcdef-0123456789'

async function setup (t: Test, opts: Partial<BalancerOptions> = {}): Promise<{ balancer: Balancer, url: string }> {
  const ups = await startUpstreams(3)
  const balancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: stickyCookie({ secret: SECRET }), ...opts })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  return { balancer, url: front.url }
}

/** Users until one lands on each upstream; returns a user per upstream name. */
async function usersOnEvery (url: string): Promise<Map<string, Browser>> {
  const on = new Map<string, Browser>()
  for (let i = 0; i < 30 && on.size < 3; i++) {
    const user = new Browser()
    on.set(await user.visit(url), user)
  }
  return on
}

/** Tracks when a promise settles. */
function track (p: Promise<void>): { done: boolean, at: number } {
  const state = { done: false, at: 0 }
  void p.then(() => { state.done = true; state.at = performance.now() })
  return state
}

t.test('without idleMs: an idle upstream drains at once, as before', async t => {
  const { balancer, url } = await setup(t)
  await usersOnEvery(url)
  const reasons: string[] = []
  balancer.on('drained', (u, reason) => reasons.push(`${u.id}: ${reason}`))
  const state = track(balancer.drain('S2'))
  await until(() => state.done, 100, 'an idle drain to resolve at once')
  t.same(reasons, ['S2: nothing in flight'])
})

t.test('with idleMs: pending while a bound user keeps coming back, resolved once it stays away for the window', async t => {
  const { balancer, url } = await setup(t)
  const on = await usersOnEvery(url)
  const user = on.get('S2')!
  const reasons: string[] = []
  balancer.on('drained', (u, reason) => reasons.push(`${u.id}: ${reason}`))
  // A window long against the visits' spacing, so a slow machine (a visit taking far
  // longer than usual) still never leaves the bound user away for a whole window.
  const idleMs = 3000
  const state = track(balancer.drain('S2', { idleMs }))
  // The bound user returns every 150 ms, eight times: never idle for the window.
  let last = 0
  for (let i = 0; i < 8; i++) {
    await delay(150)
    last = performance.now() // before the visit: the balancer sees it a little later
    t.equal(await user.visit(url), 'S2', 'the bound user stays on the draining upstream')
  }
  t.notOk(state.done, 'not drained while the bound user keeps coming back')
  const newcomer = new Browser()
  for (let i = 0; i < 6; i++) t.not(await new Browser().visit(url), 'S2', 'no new user lands there')
  t.not(await newcomer.visit(url), 'S2')
  await until(() => state.done, idleMs + 5000, 'the drain to complete')
  t.ok(state.at - last >= idleMs, `resolved ${Math.round(state.at - last)} ms after the bound user's last visit (window ${idleMs} ms)`)
  t.same(reasons, [`S2: nothing in flight, no bound user for ${idleMs} ms`])
})

t.test('with idleMs and nobody bound coming back: resolves after the window from the drain start', async t => {
  const { balancer, url } = await setup(t, { drainIdleMs: 250 })
  await usersOnEvery(url)
  const started = performance.now()
  const state = track(balancer.drain('S1'))
  await Promise.resolve()
  t.notOk(state.done, 'the balancer default (drainIdleMs 250) applies: not complete at once')
  await until(() => state.done, 1500, 'drain')
  t.ok(state.at - started >= 245, `resolved after ${Math.round(state.at - started)} ms`)
  const at = track(balancer.drain('S3', { idleMs: 0 }))
  await until(() => at.done, 100, 'idleMs: 0 overriding the default')
})

t.test('with idleMs: requests in flight and open WebSockets still hold the drain', async t => {
  const { balancer, url } = await setup(t)
  const on = await usersOnEvery(url)
  const user = on.get('S3')!
  const slow = request(`${url}/slow?ms=500`, { headers: { cookie: user.jar.header()! } })
  const { ws } = await openWebSocket(`${url.replace('http', 'ws')}/ws`, { cookie: user.jar.header()! })
  await delay(50)
  const state = track(balancer.drain('S3', { idleMs: 100 }))
  await delay(250)
  t.notOk(state.done, 'a request in flight holds it past the window')
  t.equal((await slow).json().name, 'S3')
  await delay(250)
  t.notOk(state.done, 'an open WebSocket holds it')
  ws.close()
  await until(() => state.done, 2000, 'drain after the socket closed')
  t.pass('drained once the WebSocket closed')
})

t.test('removing a draining upstream ends the wait for bound users; undrain keeps the drain pending', async t => {
  const { balancer, url } = await setup(t)
  await usersOnEvery(url)
  const state = track(balancer.drain('S1', { idleMs: 60_000 }))
  await delay(50)
  t.notOk(state.done)
  balancer.remove('S1')
  await until(() => state.done, 500, 'drain after remove')
  t.pass('a removed upstream has no bound users left to wait for')

  const pending = track(balancer.drain('S2', { idleMs: 200 }))
  balancer.undrain('S2')
  await delay(350)
  t.notOk(pending.done, 'an undrained upstream does not report drained')
})

t.test('stickyIp: a bound client coming back holds the drain too', async t => {
  const ups = await startUpstreams(2)
  const balancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: stickyIp() })
  t.teardown(async () => { await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  const req = { method: 'GET', url: '/', headers: {}, cookies: {}, ip: '198.51.100.9' }
  const home = (balancer.choose(req) as { upstream: { id: string } }).upstream.id
  // The window is long against the visits' spacing (a slow machine must not make the client look away).
  const state = track(balancer.drain(home, { idleMs: 2000 }))
  for (let i = 0; i < 5; i++) {
    await delay(80)
    balancer.choose(req)
  }
  t.notOk(state.done, 'held while the client keeps returning')
  await until(() => state.done, 6000, 'the drain once the client stayed away')
  t.pass('drained once it stayed away')
})

t.test('invalid idle windows are refused with a stable code', async t => {
  const { balancer } = await setup(t)
  for (const bad of [-1, NaN, Infinity, '5' as unknown as number]) {
    t.throws(() => balancer.drain('S1', { idleMs: bad }), AffinityError, `idleMs ${String(bad)}`)
    t.throws(() => createBalancer({ upstreams: ['http://127.0.0.1:1'], drainIdleMs: bad }), { code: 'AFFINITY_ERR_INVALID_OPTION' }, `drainIdleMs ${String(bad)}`)
  }
})

t.test('undrain, then a WebSocket there closes: no drained event; a new drain completes both', async t => {
  const { balancer, url } = await setup(t)
  const on = await usersOnEvery(url)
  const user = on.get('S2')!
  const { ws } = await openWebSocket(`${url.replace('http', 'ws')}/ws`, { cookie: user.jar.header()! })
  const drained: string[] = []
  balancer.on('drained', (u) => drained.push(u.id))
  const first = track(balancer.drain('S2'))
  await delay(30)
  t.notOk(first.done, 'an open WebSocket holds the drain')
  balancer.undrain('S2')
  ws.close()
  await until(() => balancer.list().find(u => u.id === 'S2')!.websockets === 0, 2000, 'the socket closed')
  await delay(30)
  t.same(drained, [], "no 'drained' for an upstream taking traffic again")
  t.notOk(first.done, 'the undrained drain stays pending')
  const second = track(balancer.drain('S2'))
  await until(() => first.done && second.done, 2000, 'both drains complete')
  t.same(drained, ['S2'])
})

t.test('close() completes pending drains', async t => {
  const { balancer, url } = await setup(t)
  await usersOnEvery(url)
  const state = track(balancer.drain('S1', { idleMs: 60_000 }))
  await delay(30)
  t.notOk(state.done)
  await balancer.close()
  await until(() => state.done, 1000, 'drain after close')
  t.pass('a closed balancer forwards nothing: the drain is complete')
})
