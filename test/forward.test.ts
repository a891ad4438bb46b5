import http from 'node:http'
import net from 'node:net'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { createBalancer, roundRobin, stickyCookie, type BalancerOptions } from '@affinity/core'
import { startCoreFront } from './helpers/core-front.js'
import { checkHopByHop, checkUntrustedForwarded } from './helpers/forwarded-headers.js'
import { CookieJar, delay, openWebSocket, nextMessage, request, until } from './helpers/http.js'
import { deadUrl, pattern, patternSha, startUpstream, startUpstreams, type TestUpstream } from './helpers/upstreams.js'

/** Upstreams + a balancer + the minimal core front, all torn down with the test. */
async function setup (t: Test, n: number, opts: Partial<BalancerOptions> = {}, extra: string[] = []) {
  const ups = await startUpstreams(n)
  const balancer = createBalancer({ upstreams: [...ups.map(u => ({ url: u.url, id: u.name })), ...extra], strategy: roundRobin(), ...opts })
  const front = await startCoreFront(balancer)
  t.teardown(async () => {
    await front.close()
    await balancer.close()
    await Promise.all(ups.map(u => u.close()))
  })
  return { ups, balancer, front }
}

const MB = 1 << 20

t.test('64 MB download and 64 MB upload arrive byte-identical', async t => {
  const { front } = await setup(t, 1)
  const size = 64 * MB
  const down = await request(`${front.url}/download?bytes=${size}`)
  t.equal(down.status, 200)
  t.equal(down.body.length, size)
  t.equal(Number(down.headers['content-length']), size)
  t.ok(down.body.equals(pattern(0, size)), 'download bytes identical')

  let off = 0
  const upload = new Readable({
    read () {
      if (off >= size) { this.push(null); return }
      const n = Math.min(MB, size - off)
      this.push(pattern(off, n))
      off += n
    },
  })
  const up = await request(`${front.url}/upload`, { method: 'POST', body: upload, headers: { 'content-type': 'application/octet-stream' } })
  const seen = up.json()
  t.equal(seen.bytes, size, 'upstream got every byte (chunked upload)')
  t.equal(seen.sha256, patternSha(size), 'upload bytes identical')
})

t.test('hop-by-hop headers are stripped both ways; end-to-end headers pass', async t => {
  const { front } = await setup(t, 1)
  await checkHopByHop(t, front.url)
})

t.test('X-Forwarded-For is appended to, X-Forwarded-Proto/Host are set and not spoofable', async t => {
  const { front, ups } = await setup(t, 1)
  await checkUntrustedForwarded(t, front.url, new URL(front.url).host, ups[0]!.port)
})

t.test('a refused connection is retried on another upstream with the POST body intact', async t => {
  const dead = await deadUrl()
  const { front, balancer } = await setup(t, 1, { strategy: roundRobin(), passive: false }, [dead])
  const body = pattern(0, 3 * MB)
  for (let i = 0; i < 4; i++) {
    const res = await request(`${front.url}/upload`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } })
    t.equal(res.status, 200)
    t.equal(res.json().bytes, body.length, `attempt ${i}: whole body arrived`)
  }
  const deadInfo = balancer.list().find(u => u.id === dead)!
  t.ok(deadInfo.failures >= 1, 'refusals were counted against the dead upstream')
})

t.test('a request that reached an upstream is replayed only if idempotent', async t => {
  const ups = await startUpstreams(2)
  const balancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: roundRobin(), passive: false })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })

  const post = await request(`${front.url}/destroy`, { method: 'POST', body: 'order=1' })
  t.equal(post.status, 502)
  t.same(post.json(), { statusCode: 502, error: 'Bad Gateway', message: 'No upstream could be reached' })
  const posts = ups.flatMap(u => u.seen.filter(s => s.url === '/destroy' && s.method === 'POST'))
  t.equal(posts.length, 1, 'the POST reached one upstream once: never replayed')

  const get = await request(`${front.url}/destroy`)
  t.equal(get.status, 502, 'both upstreams drop it, so a 502 after one retry')
  const gets = ups.flatMap(u => u.seen.filter(s => s.url === '/destroy' && s.method === 'GET'))
  t.equal(gets.length, 2, 'the GET was replayed once, on the other upstream')
  t.not(ups[0]!.seen.filter(s => s.method === 'GET').length, 0)
  t.not(ups[1]!.seen.filter(s => s.method === 'GET').length, 0)
})

t.test('a hanging upstream gives a JSON 504 after timeoutMs, leaking no address', async t => {
  const { front, ups } = await setup(t, 1, { timeoutMs: 300 })
  const started = Date.now()
  const res = await request(`${front.url}/hang`)
  const took = Date.now() - started
  t.equal(res.status, 504)
  t.same(res.json(), { statusCode: 504, error: 'Gateway Timeout', message: 'The upstream did not respond in time' })
  t.ok(took >= 250, `waited for the timeout (${took} ms)`)
  t.notMatch(res.body.toString(), String(ups[0]!.port))
  t.notMatch(res.body.toString(), '127.0.0.1')
})

t.test('no upstream reachable: 502 quickly; none up: 503 with Retry-After', async t => {
  const deads = [await deadUrl(), await deadUrl()]
  const balancer = createBalancer({ upstreams: deads, retries: 1 })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close() })
  const started = Date.now()
  const res = await request(`${front.url}/x`)
  t.equal(res.status, 502)
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  t.ok(Date.now() - started < 2000, 'refusals answer fast')

  const ups = await startUpstreams(1)
  ups[0]!.healthStatus = 503
  const checked = createBalancer({ upstreams: [ups[0]!.url], health: { path: '/health', intervalMs: 20, timeoutMs: 200, fall: 1, rise: 1 } })
  const front2 = await startCoreFront(checked)
  t.teardown(async () => { await front2.close(); await checked.close(); await ups[0]!.close() })
  await until(() => checked.list()[0]!.state === 'down', 3000, 'health check to mark it down')
  const none = await request(`${front2.url}/x`)
  t.equal(none.status, 503)
  t.ok(Number(none.headers['retry-after']) >= 1, 'Retry-After present')
  t.same(none.json(), { statusCode: 503, error: 'Service Unavailable', message: 'No upstream is available' })
})

t.test('a client that disconnects aborts its upstream request', async t => {
  const { front, ups } = await setup(t, 1)
  let closed = false
  ups[0]!.server.on('request', (req: http.IncomingMessage) => {
    if (req.url?.startsWith('/slow')) req.on('close', () => { closed = true })
  })
  const req = http.request(`${front.url}/slow?ms=5000`, { agent: false })
  req.on('error', () => {})
  req.end()
  await until(() => ups[0]!.seen.some(s => s.url.startsWith('/slow')), 3000, 'request to reach the upstream')
  req.destroy()
  await until(() => closed, 3000, 'upstream request to be aborted')
  t.pass('upstream saw the abort')
})

t.test('upstream dying mid-body never looks like a complete response', async t => {
  const { front } = await setup(t, 1)
  await t.rejects(request(`${front.url}/die-mid-body`), 'the client sees an error, not a short 200')
})

t.test('upstream Set-Cookie headers reach the client alongside the balancer cookie', async t => {
  const ups = await startUpstreams(2)
  const balancer = createBalancer({ upstreams: ups.map(u => u.url), strategy: stickyCookie({ secret: 's'.repeat(32) }) })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  const res = await request(`${front.url}/echo?set-cookie=${encodeURIComponent('app=42; Path=/')}`)
  const cookies = res.headers['set-cookie'] ?? []
  t.equal(cookies.length, 2)
  t.ok(cookies.some(c => c.startsWith('app=42')), 'upstream cookie kept')
  t.ok(cookies.some(c => c.startsWith('affinity=')), 'balancer cookie added')
})

t.test('WebSocket: carries end-to-end headers, lands on the pinned upstream, echoes', async t => {
  const ups = await startUpstreams(3)
  const balancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: stickyCookie({ secret: 'w'.repeat(32) }) })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  const jar = new CookieJar()
  const first = await request(`${front.url}/echo`)
  jar.store(first.headers['set-cookie'])
  const pinned = first.json().name
  const wsUrl = front.url.replace('http', 'ws') + '/chat?room=1'
  for (let i = 0; i < 3; i++) {
    const { ws, hello, upgradeHeaders } = await openWebSocket(wsUrl, { cookie: jar.header()!, authorization: 'Bearer t', origin: 'http://app.example' }, ['chat.v1'])
    t.equal(hello.name, pinned, `socket ${i} on the pinned upstream`)
    t.equal(hello.url, '/chat?room=1')
    t.equal(hello.headers.authorization, 'Bearer t')
    t.equal(hello.headers.origin, 'http://app.example')
    t.match(hello.headers.cookie, /affinity=/)
    t.equal(hello.headers['sec-websocket-protocol'], 'chat.v1')
    t.equal(hello.headers['x-forwarded-for'], '127.0.0.1')
    t.equal(upgradeHeaders['sec-websocket-protocol'], 'chat.v1')
    t.notOk(upgradeHeaders['set-cookie'], 'no new cookie for a pinned user')
    ws.send('hi')
    t.equal(await nextMessage(ws), `${pinned}:hi`)
    t.equal(balancer.list().find(u => u.id === pinned)!.websockets, 1, 'open socket counted')
    ws.close()
    await until(() => balancer.list().every(u => u.websockets === 0), 2000, 'socket count to drop')
  }
  const { ws, upgradeHeaders } = await openWebSocket(wsUrl)
  t.match(String(upgradeHeaders['set-cookie']), /^affinity=/, 'a first visit over WebSocket gets the cookie on the 101')
  ws.close()
})

t.test('WebSocket to an unreachable upstream gets an HTTP error, a refusal is relayed', async t => {
  const dead = await deadUrl()
  const balancer = createBalancer({ upstreams: [dead], retries: 0 })
  const front = await startCoreFront(balancer)
  const up = await startUpstream('R')
  const relay = createBalancer({ upstreams: [up.url] })
  const front2 = await startCoreFront(relay)
  t.teardown(async () => { await front.close(); await balancer.close(); await front2.close(); await relay.close(); await up.close() })
  const err = await openWebSocket(front.url.replace('http', 'ws') + '/chat').catch(e => e)
  t.equal(err.statusCode, 502, 'HTTP 502 instead of an accepted handshake')
  const denied = await openWebSocket(front2.url.replace('http', 'ws') + '/ws-deny').catch(e => e)
  t.equal(denied.statusCode, 401, "the upstream's own refusal reaches the client")
})

t.test('passive health ejects after consecutive failures and brings the upstream back', async t => {
  const good = await startUpstream('G')
  const flaky = await startUpstream('F')
  const balancer = createBalancer({
    upstreams: [{ url: good.url, id: 'G' }, { url: flaky.url, id: 'F' }],
    strategy: roundRobin(),
    passive: { failures: 2, cooldownMs: 300 },
  })
  const front = await startCoreFront(balancer)
  const events: string[] = []
  balancer.on('down', (u) => events.push(`down:${u.id}`))
  balancer.on('up', (u) => events.push(`up:${u.id}`))
  t.teardown(async () => { await front.close(); await balancer.close(); await good.close(); await flaky.close() })
  for (let i = 0; i < 4; i++) await request(`${front.url}/status?code=500`)
  t.equal(balancer.list().find(u => u.id === 'F')!.state, 'down', 'two 5xx in a row ejected it')
  t.same(events, ['down:F'])
  for (let i = 0; i < 4; i++) t.equal((await request(`${front.url}/echo`)).json().name, 'G', 'ejected upstream gets nothing')
  await until(() => events.includes('up:F'), 3000, 'cooldown to end')
  t.equal(balancer.list().find(u => u.id === 'F')!.state, 'up')
})

t.test('active health checks take an upstream down after `fall` and back after `rise`', async t => {
  const ups = await startUpstreams(2)
  const balancer = createBalancer({
    upstreams: ups.map(u => ({ url: u.url, id: u.name })),
    health: { path: '/health', intervalMs: 20, timeoutMs: 200, fall: 2, rise: 2 },
  })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  const events: string[] = []
  balancer.on('down', (u, why) => events.push(`down:${u.id}:${why}`))
  balancer.on('up', (u) => events.push(`up:${u.id}`))
  ups[1]!.healthStatus = 500
  await until(() => balancer.list()[1]!.state === 'down', 3000, 'S2 down')
  t.match(events[0], /^down:S2:health check answered 500/)
  for (let i = 0; i < 4; i++) t.equal((await request(`${front.url}/echo`)).json().name, 'S1')
  ups[1]!.healthStatus = 200
  await until(() => balancer.list()[1]!.state === 'up', 3000, 'S2 up')
  t.same(events.slice(1), ['up:S2'])
})

t.test('drain resolves once requests in flight finish; the upstream takes no new ones', async t => {
  const { front, balancer } = await setup(t, 2)
  const slow = request(`${front.url}/slow?ms=300`)
  await delay(50)
  const busy = balancer.list().find(u => u.inFlight === 1)!
  let drained = false
  const done = balancer.drain(busy.id).then(() => { drained = true })
  t.equal(balancer.list().find(u => u.id === busy.id)!.state, 'draining')
  for (let i = 0; i < 4; i++) t.not((await request(`${front.url}/echo`)).json().name, busy.id, 'no new requests while draining')
  t.notOk(drained, 'still draining while a request is in flight')
  t.equal((await slow).status, 200, 'the request in flight finished')
  await done
  t.ok(drained)
})

/** Sends raw bytes and resolves with everything the server answered before closing. */
function raw (url: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const { port } = new URL(url)
    // Write without half-closing: `Connection: close` makes the server end the exchange.
    const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(bytes))
    let out = ''
    socket.on('data', (c: Buffer) => { out += c.toString('latin1') })
    socket.on('close', () => resolve(out))
    socket.on('error', reject)
    socket.setTimeout(3000, () => socket.destroy())
  })
}

t.test('transfer codings other than chunked are refused with 400, never forwarded undecoded', async t => {
  const { front, ups } = await setup(t, 1)
  const answer = await raw(front.url, 'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n')
  t.match(answer, /^HTTP\/1\.1 400 /)
  t.equal(ups[0]!.seen.filter(s => s.url === '/upload').length, 0, 'nothing reached the upstream')
  const ok = await raw(front.url, 'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n')
  t.match(ok, /^HTTP\/1\.1 200 /)
  t.match(ok, /"bytes":5/)
})

t.test('only WebSocket upgrades are tunnelled: h2c and other protocols get a 400', async t => {
  const { front, ups } = await setup(t, 1)
  for (const protocol of ['h2c', 'foo/1', 'websocket2']) {
    const answer = await raw(front.url, `GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: ${protocol}\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`)
    t.match(answer, /^HTTP\/1\.1 400 /, `Upgrade: ${protocol} refused`)
  }
  t.equal(ups[0]!.seen.length, 0, 'nothing reached the upstream')
  const { ws } = await openWebSocket(front.url.replace('http', 'ws') + '/chat')
  ws.close()
  t.pass('a WebSocket upgrade still works')
})

t.test('a WebSocket upgrade with any method but GET is refused with 400 (RFC 6455 §4.1), reaching no upstream', async t => {
  const { front, ups } = await setup(t, 1)
  const { port } = new URL(front.url)
  const answer = await new Promise<string>((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1', () => {
      s.write('POST /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 4\r\n\r\nabcd')
    })
    let got = ''
    s.on('data', (c) => { got += c.toString('latin1') })
    s.on('close', () => resolve(got))
    s.on('error', reject)
  })
  t.match(answer, /^HTTP\/1\.1 400 /)
  t.equal(ups[0]!.seen.length, 0, 'nothing reached the upstream')
})
