/**
 * CI smoke test for the runnable examples under examples/: each example module
 * exports `run({ log })`, which starts its own servers on 127.0.0.1:0, walks
 * through what it demonstrates, stops everything and returns a summary. Here each
 * one runs in this process (its `@affinity/*` imports resolve to the TypeScript
 * sources, like every other test) and its summary is checked. What an example
 * prints is kept and shown only when its test fails.
 *
 * examples/multi-instance forks two balancer processes. fork() hands them this
 * process's Node flags (tap's TypeScript loader and --conditions=@affinity/source),
 * so they load the same sources as this process and need no prior build.
 */
import t, { type Test } from 'tap'

type Log = (...args: unknown[]) => void

/** Imports examples/<name>/index.js. The specifier is computed, so tsc does not type-check the plain-JS example. */
async function load<S> (name: string): Promise<{ run (opts: { log: Log } & Record<string, unknown>): Promise<S> }> {
  return await import(new URL(`../examples/${name}/index.js`, import.meta.url).href)
}

/** Runs an example, printing its output if the test fails. */
async function runExample<S> (t: Test, name: string, opts: Record<string, unknown> = {}): Promise<S> {
  const lines: string[] = []
  t.teardown(() => { if (!t.passing()) console.error(`--- ${name} printed:\n${lines.join('\n')}`) })
  const { run } = await load<S>(name)
  const started = Date.now()
  const summary = await run({ ...opts, log: (...args) => lines.push(args.join(' ')) })
  t.comment(`${name}: ${Date.now() - started} ms`)
  return summary
}

interface FastifyStickyCookie {
  users: Array<{ user: string, servers: string[], visits: number[], affinityCookiesSet: number }>
  cookieless: { servers: string[], visits: number[] }
  ownRoutes: Record<string, { status: number, body: unknown, setCookie: string[] }>
  ownRoutesReachedUpstreams: boolean
  cookie: { name: string, value: string, attributes: Record<string, string | true>, upstreamCookies: string[], opaque: boolean }
}

t.test('fastify-sticky-cookie: users stay on one upstream, the app\'s own routes are untouched', async t => {
  const s = await runExample<FastifyStickyCookie>(t, 'fastify-sticky-cookie')
  t.equal(s.users.length, 3)
  for (const u of s.users) {
    t.equal(u.servers.length, 1, `${u.user} stayed on one upstream`)
    t.same(u.visits, [1, 2, 3, 4], `${u.user}'s in-memory session survived`)
    t.equal(u.affinityCookiesSet, 1, `${u.user} got the balancer cookie once`)
  }
  t.same(s.cookieless.visits, [1, 1, 1, 1], 'without cookies every request starts a new session')
  t.ok(s.cookieless.servers.length > 1, 'and new users are spread over the upstreams')

  t.same(Object.keys(s.ownRoutes).sort(), ['/', '/health'])
  for (const [path, r] of Object.entries(s.ownRoutes)) {
    t.equal(r.status, 200, `${path} answered by the app`)
    t.same(r.setCookie, [], `${path} sets no cookie`)
  }
  t.same(s.ownRoutes['/health']!.body, { status: 'ok' })
  t.equal(s.ownRoutesReachedUpstreams, false, 'the app\'s routes never reach an upstream')

  t.equal(s.cookie.name, 'affinity')
  t.match(s.cookie.value, /^[A-Za-z0-9_-]{40,}$/)
  t.same(s.cookie.attributes, { Path: '/app', 'Max-Age': '3600', HttpOnly: true, SameSite: 'Lax' }, 'no Secure over plain http')
  t.ok(s.cookie.opaque, 'the cookie names no upstream address')
  t.same(s.cookie.upstreamCookies, ['sid'], 'the upstream\'s own Set-Cookie passes alongside')
})

interface ExpressIpHash {
  clients: Array<{ user: string, ip: string, clientIp: string, servers: string[], visits: number[] }>
  mapped: { server: string, clientIp: string, sameAsIpv4: boolean }
  rotated: { server: string, sameAsBefore: boolean }
  spoof: { server: string, clientIp: string, routedAsRealAddress: boolean }
  trusts: Record<string, boolean>
}

t.test('express-ip-hash: clients behind a trusted proxy stick by X-Forwarded-For; spoofing does not count', async t => {
  const s = await runExample<ExpressIpHash>(t, 'express-ip-hash')
  t.ok(s.clients.length >= 4)
  for (const c of s.clients) {
    t.equal(c.clientIp, c.ip, `${c.user}: req.ip is the address the trusted proxy reported`)
    t.equal(c.servers.length, 1, `${c.user} stayed on one upstream`)
    t.same(c.visits, [1, 2, 3, 4], `${c.user}'s state survived`)
  }
  t.equal(s.mapped.clientIp, '::ffff:198.51.100.7')
  t.ok(s.mapped.sameAsIpv4, 'an IPv4-mapped address lands where its IPv4 form does')
  t.ok(s.rotated.sameAsBefore, 'a new address in the same IPv6 /64 lands on the same upstream')
  t.equal(s.spoof.clientIp, '203.0.113.66', 'the spoofed X-Forwarded-For entry is ignored')
  t.ok(s.spoof.routedAsRealAddress, 'the spoofer is routed by her real address')
  t.same(s.trusts, { '127.0.0.1': true, '::1': true, '203.0.113.66': false })
})

interface SocketioChat {
  roundRobin: { failed: boolean, status?: number, handshakeServer?: string, refused: Array<{ server: string, transport: string, status: number, code: number, message: string }> }
  sticky: {
    clients: Array<{ user: string, room: string, transports: string[], handshakeServer: string, handshakeTransport: string, upgradedOn: string | null, servers: string[], upgradeCarriedCookie: boolean, sequence: string[] }>
    rooms: Record<string, { server: string, received: Record<string, string[]> }>
  }
}

t.test('socketio-chat: round robin breaks the engine.io handshake; stickyCookie keeps it on one server', async t => {
  const s = await runExample<SocketioChat>(t, 'socketio-chat')

  const rr = s.roundRobin
  t.equal(rr.failed, true, 'with round robin the client cannot connect')
  t.equal(rr.status, 400, 'a polling request was answered 400')
  t.ok(rr.handshakeServer, 'the handshake itself succeeded somewhere')
  t.ok(rr.refused.length >= 1, 'another server refused the session')
  for (const r of rr.refused) {
    t.not(r.server, rr.handshakeServer, `${r.server} is not the handshake server`)
    t.match(r, { code: 1, message: 'Session ID unknown', status: 400 })
  }

  const { clients, rooms } = s.sticky
  t.equal(clients.length, 4)
  for (const c of clients) {
    t.same(c.transports, ['polling', 'websocket'], `${c.user}: polling, then upgraded to websocket`)
    t.equal(c.handshakeTransport, 'polling')
    t.same(c.servers, [c.handshakeServer], `${c.user}: every request on ${c.handshakeServer}`)
    t.equal(c.upgradedOn, c.handshakeServer, `${c.user}: upgraded on the handshake server`)
    t.ok(c.upgradeCarriedCookie, `${c.user}: the WebSocket upgrade carried the balancer cookie`)
    t.ok(c.sequence.some(x => x.includes('(upgrade)')), `${c.user}: the upgrade request was seen`)
  }
  t.same(Object.keys(rooms).sort(), ['dev', 'lobby'])
  for (const [room, r] of Object.entries(rooms)) {
    const members = clients.filter(c => c.room === room)
    const expected = members.map(m => `${m.user}: hello from ${m.user}`).sort()
    for (const m of members) {
      t.same([...r.received[m.user]!].sort(), expected, `${m.user} got every message of ${room}, and only those`)
    }
  }
})

interface MultiInstance {
  users: number
  cookieAgreed: number
  cookieReissuedByB: number
  hashAgreed: number
  rows: Array<{ user: string, cookie: { a: string, b: string, answeredBy: string[] }, hash: { a: string, b: string } }>
}

t.test('multi-instance: two balancer processes agree on every user', async t => {
  const s = await runExample<MultiInstance>(t, 'multi-instance')
  t.equal(s.users, 20)
  t.equal(s.cookieAgreed, 20, 'a cookie issued by A routes to the same upstream on B')
  t.equal(s.cookieReissuedByB, 0, 'B accepted A\'s cookie as it was')
  t.equal(s.hashAgreed, 20, 'consistentHash on x-user-id agrees across instances')
  t.ok(s.rows.every(r => r.cookie.answeredBy.join() === 'A,B'), 'the two requests were served by A then B')
  t.ok(new Set(s.rows.map(r => r.cookie.a)).size > 1, 'users are spread over several upstreams')
})

interface DrainPrestop {
  target: string
  idleMs: number
  during: string[]
  visits: number[]
  hookPendingWhileActive: boolean
  newcomers: string[]
  hook: { status: number, body: { id: string, drained: boolean, waitedMs: number } }
  quietMs: number
  drainedEvents: Array<{ id: string, reason: string }>
  preview: { known: string, moved: number, total: number, flows: Array<{ from: string, to: string | null, count: number }> }
  remap: { moved: number, flows: unknown[], change: { upstream: string, to: string } }
  afterRemoval: string
}

t.test('drain-prestop: the admin drain answers only after bound users stayed away for the idle window', async t => {
  const s = await runExample<DrainPrestop>(t, 'drain-prestop')
  t.same(s.during, Array(6).fill(s.target), 'a bound user stays on the draining upstream')
  t.same(s.visits, [2, 3, 4, 5, 6, 7], 'and her in-memory session keeps counting')
  t.ok(s.hookPendingWhileActive, 'the preStop hook waits while she is active')
  t.notOk(s.newcomers.includes(s.target), `new users go elsewhere (${s.newcomers.join(',')})`)
  t.match(s.hook, { status: 200, body: { id: s.target, drained: true } }, 'then POST /drain/:id answers 200')
  t.ok(s.quietMs >= s.idleMs, `${s.quietMs} ms after her last visit (window ${s.idleMs} ms)`)
  t.same(s.drainedEvents, [{ id: s.target, reason: `nothing in flight, no bound user for ${s.idleMs} ms` }], "one 'drained' event")
  t.match(s.preview, { known: 'bound', flows: [{ from: s.target, to: null }] }, 'preview: the removed upstream\'s users are re-placed')
  t.ok(s.preview.moved >= 1 && s.preview.moved < s.preview.total)
  t.same(s.remap, { moved: s.preview.moved, flows: s.preview.flows, change: { upstream: s.target, to: 'removed' } }, 'the remap event reports what preview said')
  t.not(s.afterRemoval, s.target, 'after removal she is re-placed')
})

interface ClusterExample {
  workers: number
  users: number
  cookieOneUpstream: number
  hashOneUpstream: number
  cookieSeveralWorkers: number
  hashSeveralWorkers: number
  cookieIssuedOnce: number
  placement: Record<string, number>
}

t.test('cluster: two workers share one port; every user reaches one upstream through both', async t => {
  const s = await runExample<ClusterExample>(t, 'cluster', { workers: 2, users: 8, requests: 4 })
  t.equal(s.workers, 2)
  t.equal(s.cookieOneUpstream, 8, 'stickyCookie: each user on one upstream')
  t.equal(s.hashOneUpstream, 8, 'consistentHash: each user on one upstream')
  t.ok(s.cookieSeveralWorkers >= 1 && s.hashSeveralWorkers >= 1, `served by both workers (cookie ${s.cookieSeveralWorkers}, hash ${s.hashSeveralWorkers} users)`)
  t.equal(s.cookieIssuedOnce, 8, 'a worker honours the cookie another issued: one Set-Cookie per user')
  t.ok(Object.values(s.placement).filter(n => n > 0).length > 1, `users spread over the upstreams ${JSON.stringify(s.placement)}`)
})

interface NodeHttp { first: string, path: string, again: string[], spread: string[] }

t.test('node-http: a page-long adapter over @affinity/core/adapter keeps a browser on one upstream', async t => {
  const s = await runExample<NodeHttp>(t, 'node-http')
  t.same(s.again, [s.first, s.first, s.first, s.first], 'the cookie keeps the user where they landed')
  t.equal(s.path, '/hello?x=1', 'the upstream sees the path and query')
  t.ok(s.spread.length > 1, `new users spread (${s.spread.join(', ')})`)
})
