/**
 * The Fastify plugin on an `http2: true` app (issue 13, "HTTP/2 in front"), driven
 * by a real node:http2 client over real sockets: h2c, TLS, and TLS with HTTP/1.1
 * allowed, each against HTTP/1.1 upstreams (the default) and HTTP/2 upstreams
 * (`pool: { allowH2: true }`, the SPEC's opt-in). After every case the books
 * balance: every upstream up, nothing in flight, no failure charged.
 * undici as the h2 client and HTTP/1.1 clients on the same server: http2-clients.fastify.test.ts.
 */
import { once } from 'node:events'
import http2 from 'node:http2'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import type { BalancerOptions } from '@affinity/core'
import { FRONT_MODES, h2Request } from './helpers/h2.js'
import { checkBooks, h2Fixture, nextOutcome, onAny, type H2Fixture, type UpstreamKind } from './helpers/h2-fixture.js'
import { pattern, patternSha } from './helpers/upstreams.js'
import type { Seen } from './helpers/stream-upstream.js'

const MB = 1 << 20
const { NGHTTP2_CANCEL } = http2.constants

/** The upstream's own view of a request: which header fields arrived, and what they said. */
function checkUpstreamView (t: Test, fx: H2Fixture, seen: Seen): void {
  const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map(n => n.toLowerCase())
  const upstream = new URL(fx.ups.find(u => u.seen.includes(seen))!.url)
  t.equal(seen.httpVersion, fx.kind === 'h1' ? '1.1' : '2.0', `the upstream connection speaks ${fx.kind === 'h1' ? 'HTTP/1.1' : 'HTTP/2'}`)
  if (fx.kind === 'h1') {
    t.notOk(names.some(n => n.startsWith(':')), 'no pseudo-header reaches an HTTP/1.1 upstream')
  } else {
    // An h2 upstream gets pseudo-headers of its own (undici's), never the client's.
    t.same(names.filter(n => n.startsWith(':')).sort(), [':authority', ':method', ':path', ':scheme'], 'its own pseudo-headers only, once each')
  }
  t.equal(seen.headers.host ?? seen.headers[':authority'], upstream.host, "Host (:authority) is the upstream's")
  t.equal(seen.headers['x-forwarded-host'], new URL(fx.front.url).host, 'X-Forwarded-Host is the client’s :authority')
  t.equal(seen.headers['x-forwarded-proto'], fx.mode === 'h2c' ? 'http' : 'https', 'X-Forwarded-Proto')
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the client address')
}

type Case = (t: Test, fx: H2Fixture) => Promise<void>

const cases: Record<string, Case> = {
  async 'GET: the upstream sees no pseudo-header, its own Host, X-Forwarded-* from the h2 request' (t, fx) {
    const res = await h2Request(fx.session, { ':path': '/api/echo?q=1', 'x-end-to-end': 'yes' })
    t.equal(res.status, 200)
    const seen = fx.ups.flatMap(u => u.seen).at(-1)!
    t.equal(seen.url, '/echo?q=1', 'the path below the prefix, query kept')
    t.equal(seen.headers['x-end-to-end'], 'yes', 'end-to-end headers pass')
    checkUpstreamView(t, fx, seen)
    t.same(fx.front.versions, ['2.0'], 'the client spoke HTTP/2 to the app')
  },

  async 'HEAD: the head without a body' (t, fx) {
    const res = await h2Request(fx.session, { ':method': 'HEAD', ':path': '/api/download?bytes=5000' })
    t.equal(res.status, 200)
    t.equal(res.headers['content-length'], '5000', "the upstream's Content-Length")
    t.equal(res.body.length, 0, 'no body')
    t.equal(fx.ups.flatMap(u => u.seen).at(-1)!.method, 'HEAD')
  },

  async 'POST: a small body, and 8 MB streamed both ways, byte-identical' (t, fx) {
    const small = await h2Request(fx.session, { ':method': 'POST', ':path': '/api/echo', 'content-type': 'text/plain' }, 'hello h2')
    t.match(small.json(), { method: 'POST', bytes: 8 }, 'small body relayed')
    const size = 8 * MB
    let off = 0
    const upload = new Readable({
      read () {
        if (off >= size) { this.push(null); return }
        const n = Math.min(MB / 4, size - off)
        this.push(pattern(off, n))
        off += n
      },
    })
    const up = await h2Request(fx.session, { ':method': 'POST', ':path': '/api/upload', 'content-type': 'application/octet-stream' }, upload)
    t.match(up.json(), { bytes: size, sha256: patternSha(size) }, 'a streamed upload arrives byte-identical')
    const down = await h2Request(fx.session, { ':path': `/api/download?bytes=${size}` })
    t.equal(down.body.length, size)
    t.ok(down.body.equals(pattern(0, size)), 'a download arrives byte-identical')
  },

  async 'response headers and several Set-Cookie fields reach the h2 client, next to the balancer cookie' (t, fx) {
    const res = await h2Request(fx.session, { ':path': '/api/cookies' })
    t.equal(res.headers['x-custom'], 'kept')
    const cookies = res.headers['set-cookie'] as string[]
    t.same(cookies.slice(0, 3), ['a=1; Path=/', 'b=2; HttpOnly', 'c=3; SameSite=Lax'], "the upstream's Set-Cookie fields, in order")
    t.match(cookies[3], /^affinity=/, "and the balancer's own")
    t.equal(res.body.toString(), 'cookies')
  },

  async 'trailers of a chunked upstream response reach the h2 client' (t, fx) {
    const res = await h2Request(fx.session, { ':path': '/api/trailers' })
    t.equal(res.body.toString(), 'part one, part two')
    t.equal(res.headers.trailer, 'x-checksum, x-status', 'the Trailer header is kept')
    t.match(res.trailers, { 'x-checksum': 'abc123', 'x-status': 'done' }, 'the trailer fields arrive')
  },

  async 'SSE: the head reaches the h2 client before any body byte' (t, fx) {
    const sse = onAny(fx.ups, 'sse')
    const stream = fx.session.request({ ':path': '/api/sse', accept: 'text/event-stream' })
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    // The upstream sends no event until the client has the head: a proxy that held
    // the head until the first body byte never gets here (the test times out).
    const [[head], { args: [res] }] = await Promise.all([once(stream, 'response'), sse])
    t.equal(head[':status'], 200)
    t.equal(head['content-type'], 'text/event-stream')
    t.equal(chunks.length, 0, 'no body yet')
    res.write('data: first\n\n')
    res.end('data: last\n\n')
    await once(stream, 'end')
    t.equal(Buffer.concat(chunks).toString(), 'data: first\n\ndata: last\n\n')
  },

  async 'stickyCookie over one h2 session: the cookie in several `cookie` fields keeps the user on its upstream' (t, fx) {
    const first = await h2Request(fx.session, { ':path': '/api/echo', cookie: 'theme=dark' })
    const pinned = first.json().name
    const token = ((first.headers['set-cookie'] as string[]).find(c => c.startsWith('affinity='))!).split(';')[0]!
    // h2 clients may split Cookie into one field per crumb (RFC 9113 §8.2.3), as browsers do.
    const again = await Promise.all(Array.from({ length: 6 }, () =>
      h2Request(fx.session, { ':path': '/api/echo', cookie: ['theme=dark', token, 'lang=en'] })))
    t.same(again.map(r => r.json().name), Array(6).fill(pinned), `every request stays on ${pinned}`)
    t.ok(again.every(r => r.headers['set-cookie'] === undefined), 'no new cookie for a pinned user')
    t.equal(again[0]!.json().headers.cookie, `theme=dark; ${token}; lang=en`, 'the upstream gets one Cookie header with every crumb')
    // A second user lands elsewhere (round robin places the unpinned) and stays there too.
    const other = await h2Request(fx.session, { ':path': '/api/echo' })
    t.not(other.json().name, pinned, 'a new user is placed on the other upstream')
  },

  async 'an SSE stream silent past idleTimeoutMs is reset for the h2 client, never ended cleanly; not charged' (t, fx) {
    const outcome = nextOutcome(fx.balancer)
    const sse = onAny(fx.ups, 'sse')
    const stream = fx.session.request({ ':path': '/api/sse' })
    let ended = false
    stream.on('end', () => { ended = true })
    stream.on('error', () => {})
    stream.resume() // read as a client does
    const [, { args: [res] }] = await Promise.all([once(stream, 'response'), sse])
    res.write('data: one\n\n')
    // The idle timer (idleTimeoutMs: 300 for this case) is the feature under test.
    // Not events.once: the reset's 'error' event would reject it.
    const [o] = await Promise.all([outcome, new Promise(resolve => stream.once('close', resolve))])
    t.equal(o.kind, 'idle_timeout', 'outcome: idle_timeout')
    t.equal(stream.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR, 'the stream is reset with INTERNAL_ERROR')
    t.notOk(ended, 'the client never sees a clean end')
  },

  async 'a client that resets its stream mid-response: the upstream request is aborted, not charged' (t, fx) {
    const outcome = nextOutcome(fx.balancer)
    const held = onAny(fx.ups, 'hold')
    const stream = fx.session.request({ ':path': '/api/hold' })
    await Promise.all([once(stream, 'data'), held])
    const aborted = onAny(fx.ups, 'aborted')
    stream.close(NGHTTP2_CANCEL)
    const [{ args: [path] }, o] = await Promise.all([aborted, outcome])
    t.equal(path, '/hold', 'the upstream saw its request aborted')
    t.equal(o.kind, 'aborted', 'outcome: aborted')
    t.equal(fx.balancer.stats().upstreams.find(u => u.id === o.upstream)!.outcomes.aborted, 1)
  },

  async 'a client that resets a download with RST_STREAM(NO_ERROR) mid-body: the upstream request is aborted, not charged' (t, fx) {
    const outcome = nextOutcome(fx.balancer)
    const stream = fx.session.request({ ':path': `/api/download?bytes=${16 * MB}` })
    await once(stream, 'data')
    const aborted = onAny(fx.ups, 'aborted')
    // NO_ERROR, unlike other codes, leaves node:http2's server stream open with writes
    // queued that can never drain: only the request's 'aborted' event tells.
    stream.close(http2.constants.NGHTTP2_NO_ERROR)
    const [{ args: [path] }, o] = await Promise.all([aborted, outcome])
    t.equal(path, '/download', 'the upstream saw its request aborted')
    t.equal(o.kind, 'aborted', 'outcome: aborted')
  },

  async 'a client that resets its stream mid-upload: the upstream request is aborted, not charged' (t, fx) {
    const outcome = nextOutcome(fx.balancer)
    const uploading = onAny(fx.ups, 'upload')
    let ended = false
    for (const up of fx.ups) up.events.on('upload-end', () => { ended = true })
    const stream = fx.session.request({ ':method': 'PUT', ':path': '/api/upload-hold' }, { endStream: false })
    stream.on('error', () => {})
    stream.write(pattern(0, 64 * 1024))
    await uploading
    const aborted = onAny(fx.ups, 'aborted')
    // destroy(): RST_STREAM alone. (close(code) would end the upload first —
    // node:http2 sends END_STREAM, then RST_STREAM — and the upload would be complete.)
    stream.destroy(new Error('the user cancelled the upload'))
    t.equal((await outcome).kind, 'aborted', 'outcome: aborted')
    // An h2 upstream is not told (a limit of undici + Node, not of the forwarder):
    // undici aborts an h2 request with stream.close(), and Node 20.20 never sends
    // that RST_STREAM for a stream fed by a pipeline, as undici feeds request bodies,
    // so the upstream learns of it when the session ends (the balancer closes).
    if (fx.kind === 'h1') {
      t.equal((await aborted).args[0], '/upload-hold', 'the upstream saw its request aborted')
      t.notOk(ended, 'and never a complete body')
    }
  },
}

/** Balancer options a case needs (the default: none). */
const caseOptions: Record<string, Partial<BalancerOptions>> = {
  'an SSE stream silent past idleTimeoutMs is reset for the h2 client, never ended cleanly; not charged': { idleTimeoutMs: 300 },
}

for (const mode of FRONT_MODES) {
  for (const kind of ['h1', 'h2'] as UpstreamKind[]) {
    t.test(`front ${mode}, ${kind === 'h1' ? 'HTTP/1.1 upstreams' : 'HTTP/2 upstreams (pool.allowH2)'}`, async t => {
      for (const [name, run] of Object.entries(cases)) {
        await t.test(name, { timeout: 20_000 }, async t => {
          const fx = await h2Fixture(t, mode, kind, caseOptions[name])
          await run(t, fx)
          checkBooks(t, fx.balancer, name)
        })
      }
    })
  }
}

t.test('an upstream that dies mid-body: the h2 client sees its stream reset, never a clean end', async t => {
  const fx = await h2Fixture(t, 'h2c', 'h1')
  const outcome = nextOutcome(fx.balancer)
  const stream = fx.session.request({ ':path': '/api/die-mid-body' })
  let bytes = 0
  let ended = false
  stream.on('data', (c: Buffer) => { bytes += c.length })
  stream.on('end', () => { ended = true })
  stream.on('error', () => {})
  const [o] = await Promise.all([outcome, new Promise(resolve => stream.once('close', resolve))])
  t.equal(o.kind, 'reset', "outcome: reset (the upstream's doing, so charged)")
  t.equal(stream.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR, 'the stream is reset with INTERNAL_ERROR')
  t.notOk(ended, `no clean end after ${bytes} of 1000000 bytes`)
})
