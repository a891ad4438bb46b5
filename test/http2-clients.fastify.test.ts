/**
 * The Fastify `http2: true` front with other real clients: undici speaking h2
 * (`H2CClient` for h2c, `allowH2` over TLS), and HTTP/1.1 clients (node:https, a
 * `ws` WebSocket) on the TLS server that allows HTTP/1.1 too. The books balance
 * after every case. (node:http2 as the client: http2.fastify.test.ts.)
 */
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { Client, H2CClient, type Dispatcher } from 'undici'
import { WebSocket } from 'ws'
import { FRONT_MODES, httpsRequest, TLS, type FrontMode } from './helpers/h2.js'
import { checkBooks, h2Fixture, type H2Fixture } from './helpers/h2-fixture.js'
import { pattern, sha256 } from './helpers/upstreams.js'

/** undici as an h2 client of the front: h2c needs its H2CClient, TLS negotiates h2 by ALPN. */
function undiciClient (t: Test, fx: H2Fixture): Dispatcher {
  const client = fx.mode === 'h2c' ? new H2CClient(fx.front.url) : new Client(fx.front.url, { allowH2: true, connect: { ca: TLS.cert } })
  t.teardown(() => client.destroy())
  return client
}

async function undiciCases (t: Test, mode: FrontMode): Promise<void> {
  const fx = await h2Fixture(t, mode, 'h1')
  const client = undiciClient(t, fx)

  const get = await client.request({ path: '/api/echo?x=1', method: 'GET', headers: { 'x-end-to-end': 'yes' } })
  const seen = await get.body.json() as any
  t.equal(get.statusCode, 200)
  t.match(seen, { method: 'GET', url: '/echo?x=1', httpVersion: '1.1' }, 'the upstream got the request over HTTP/1.1')
  t.equal(seen.headers['x-end-to-end'], 'yes')
  t.equal(seen.headers['x-forwarded-host'], new URL(fx.front.url).host, 'X-Forwarded-Host from :authority')
  t.equal(seen.headers['x-forwarded-proto'], mode === 'h2c' ? 'http' : 'https')
  t.notOk(Object.keys(seen.headers).some(n => n.startsWith(':')), 'no pseudo-header upstream')

  const head = await client.request({ path: '/api/download?bytes=300', method: 'HEAD' })
  await head.body.dump()
  t.equal(head.headers['content-length'], '300', 'HEAD: the head, no body')

  const body = pattern(0, 3 * 1024 * 1024)
  const post = await client.request({ path: '/api/echo', method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } })
  t.match(await post.body.json(), { method: 'POST', bytes: body.length, sha256: sha256(body) }, 'a 3 MB body arrives byte-identical')

  // No trailer check here: undici 7.30.2's h2 client drops response trailers itself
  // (the object-vs-list mismatch the forwarder works around for h2 upstreams); the
  // node:http2 client receives them (http2.fastify.test.ts).

  const cookies = await client.request({ path: '/api/cookies', method: 'GET' })
  await cookies.body.dump()
  const setCookie = cookies.headers['set-cookie'] as string[]
  t.equal(setCookie.length, 4, "three upstream Set-Cookie fields and the balancer's")
  const token = setCookie.find(c => c.startsWith('affinity='))!.split(';')[0]!
  const pinned = fx.ups.find(u => u.seen.some(r => r.url === '/cookies'))!.name
  const names = await Promise.all(Array.from({ length: 8 }, async () => {
    const r = await client.request({ path: '/api/echo', method: 'GET', headers: { cookie: `a=1; ${token}` } })
    return (await r.body.json() as any).name
  }))
  t.same(names, Array(8).fill(pinned), 'concurrent streams with the cookie stay on its upstream')
  t.same(new Set(fx.front.versions), new Set(['2.0']), 'every request reached the app over HTTP/2')
  checkBooks(t, fx.balancer, 'the undici requests')
}

for (const mode of FRONT_MODES) {
  t.test(`undici as an h2 client, front ${mode}`, t => undiciCases(t, mode))
}

t.test('HTTP/1.1 clients on the TLS server that allows them: requests, the sticky cookie, a WebSocket', async t => {
  const fx = await h2Fixture(t, 'tls+http1', 'h1')
  const first = await httpsRequest(`${fx.front.base}/echo`, { headers: { 'x-a': 'b' } })
  const seen = JSON.parse(first.body.toString())
  t.equal(first.res.httpVersion, '1.1', 'served over HTTP/1.1')
  t.equal(seen.headers['x-forwarded-proto'], 'https')
  t.equal(seen.headers['x-forwarded-host'], new URL(fx.front.url).host)
  const token = (first.res.headers['set-cookie'] as string[])[0]!.split(';')[0]!
  const body = pattern(0, 100_000)
  const post = await httpsRequest(`${fx.front.base}/echo`, { method: 'POST', headers: { cookie: token, 'content-length': body.length } }, body)
  t.match(JSON.parse(post.body.toString()), { name: seen.name, bytes: body.length, sha256: sha256(body) }, 'a POST, on the same upstream')

  // The h2 session and an h1 user share the balancer: the h1 user stays pinned.
  const h2 = fx.session.request({ ':path': '/api/echo' })
  h2.resume()
  await once(h2, 'end')
  const again = await httpsRequest(`${fx.front.base}/echo`, { headers: { cookie: token } })
  t.equal(JSON.parse(again.body.toString()).name, seen.name, 'still on its upstream')

  const ws = new WebSocket(`${fx.front.base.replace('https', 'wss')}/ws`, { ca: TLS.cert, headers: { cookie: token } })
  t.teardown(() => ws.terminate())
  const [hello] = await once(ws, 'message')
  const greeting = JSON.parse(String(hello))
  t.equal(greeting.name, seen.name, 'the WebSocket reached the pinned upstream')
  t.equal(greeting.url, '/ws')
  t.equal(greeting.headers['x-forwarded-proto'], 'https')
  ws.send('ping')
  const [echo] = await once(ws, 'message')
  t.equal(String(echo), `${seen.name}:ping`, 'messages flow both ways')
  ws.close()
  await once(ws, 'close')
  t.same(fx.front.versions, ['1.1', '1.1', '2.0', '1.1', '1.1'], 'both protocols on one server (the upgrade went through the router)')
  checkBooks(t, fx.balancer, 'the HTTP/1.1 requests and the WebSocket')
})
