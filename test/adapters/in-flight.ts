/**
 * Every attempt settles exactly once, whatever the order of events: a client that
 * leaves while the decision is made, before the upstream connection is up, while
 * the upstream holds its answer, in the middle of the answer, or while its answer
 * waits behind another on a pipelined connection. Each ordering is forced with
 * events (in-flight-rig.ts), never with sleeps. A leak would keep `inFlight` above
 * 0 for good (a drain that never completes, leastConnections skewed); none of it
 * may be charged to the upstream, and none of it may crash the process.
 * Run per adapter by in-flight.express.test.ts and in-flight.fastify.test.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import http2, { type Http2Server, type ServerHttp2Stream } from 'node:http2'
import type { Test } from 'tap'
import type { AdapterHarness } from './harness.js'
import { checkBooks, gatedStore, heldConnector, RawClient, rig, signal, within, type Rig } from './in-flight-rig.js'
import { connect } from '../helpers/h2-client.js'
import { until } from '../helpers/http.js'

/** Reads the whole request, then answers 200. */
function echo (req: IncomingMessage, res: ServerResponse): void {
  req.resume()
  req.on('end', () => res.end('ok'))
}

/**
 * /hold never answers; /big streams 64 KiB chunks until its socket is full (`blocked`
 * fires), then one more and the end — or, given `full`, streams on (waiting for each
 * drain) until `full()` holds; /after answers 1 KiB once `ready` resolves.
 */
function routes (opts: { blocked: { fire: () => void }, ready?: () => Promise<void>, full?: () => boolean }): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume()
    if (req.url!.startsWith('/hold')) return
    if (req.url!.startsWith('/after')) {
      void opts.ready?.().then(() => res.end(Buffer.alloc(1024, 'a')))
      return
    }
    const chunk = Buffer.alloc(64 * 1024, 'b')
    const full = opts.full
    const pump = (): void => {
      if (full === undefined) {
        while (res.write(chunk)) { /* until the balancer stops reading */ }
        opts.blocked.fire()
        res.once('drain', () => res.end(chunk))
        return
      }
      while (!full()) if (!res.write(chunk)) { res.once('drain', pump); return }
      res.end(chunk)
    }
    pump()
  }
}

export function runInFlight (t: Test, h: AdapterHarness): void {
  t.test(`${h.name}: the client leaves while the decision is made (a stick store that answers after the server saw the close)`, async t => {
    for (const body of [false, true]) {
      let r!: Rig
      const store = gatedStore(() => r.conns.idle())
      r = await rig(t, h, { store, handle: echo })
      const c = new RawClient(r.port)
      await c.write(body ? 'POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf' : 'GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n')
      await store.asked
      c.socket.destroy()
      await checkBooks(t, r, { requests: 0 })
      t.equal(r.seen.length, 0, `${body ? 'a POST with half its body' : 'a GET'}: nothing reached the upstream`)
    }
  })

  t.test(`${h.name}: a pipelined request whose client leaves while its decision is made`, async t => {
    let r!: Rig
    const got = signal()
    const store = gatedStore(() => r.conns.idle(), 2)
    r = await rig(t, h, { store, handle: (req, res) => { got.fire(); routes({ blocked: signal() })(req, res) } })
    const c = new RawClient(r.port)
    await c.write('GET /api/hold HTTP/1.1\r\nHost: x\r\n\r\nGET /api/big HTTP/1.1\r\nHost: x\r\n\r\n')
    await Promise.all([store.asked, got.promise])
    c.socket.destroy()
    await checkBooks(t, r, { requests: 1, aborted: 1 })
    t.same(r.seen.map(s => s.url), ['/hold'], 'only the first request reached the upstream')
  })

  t.test(`${h.name}: the client leaves before the upstream connection is up`, async t => {
    for (const body of [false, true]) {
      let r!: Rig
      const connecting = signal()
      r = await rig(t, h, { handle: echo, connect: heldConnector(() => { connecting.fire(); return r.conns.idle() }) })
      const c = new RawClient(r.port)
      await c.write(body ? 'POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf' : 'GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n')
      await connecting.promise
      c.socket.destroy()
      await checkBooks(t, r, { requests: 1, aborted: 1 })
      t.equal(r.seen.length, 0, `${body ? 'a POST with half its body (its relay finds the body gone)' : 'a GET'}: nothing reached the upstream`)
    }
  })

  t.test(`${h.name}: the client leaves mid-upload while the upstream holds its answer`, async t => {
    let r!: Rig
    const got = signal()
    r = await rig(t, h, {
      handle: (_req, res) => {
        got.fire()
        void r.conns.idle().then(() => { if (!res.destroyed) res.end('too late') })
      },
    })
    const c = new RawClient(r.port)
    await c.write(`PUT /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: ${1 << 20}\r\n\r\n`)
    await c.write(Buffer.alloc(64 * 1024, 'u'))
    await got.promise
    c.socket.destroy()
    await checkBooks(t, r, { requests: 1, aborted: 1 })
  })

  t.test(`${h.name}: the client leaves in the middle of the answer`, async t => {
    let r!: Rig
    r = await rig(t, h, {
      handle: (req, res) => {
        req.resume()
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.write('first part;')
        void r.conns.idle().then(() => { if (!res.destroyed) res.end('the rest') })
      },
    })
    const c = new RawClient(r.port)
    await c.write('GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n')
    await c.until(x => Buffer.concat(x.chunks).includes('first part;'))
    c.socket.destroy()
    await checkBooks(t, r, { requests: 1, aborted: 1 })
  })

  t.test(`${h.name}: a pipelined answer paused behind another when the client leaves (Node never closes a queued response)`, async t => {
    const blocked = signal()
    const r = await rig(t, h, { handle: routes({ blocked }) })
    const c = new RawClient(r.port)
    await c.write('GET /api/hold HTTP/1.1\r\nHost: x\r\n\r\nGET /api/big HTTP/1.1\r\nHost: x\r\n\r\n')
    // The second answer filled its queued response: the balancer stopped reading it.
    await blocked.promise
    c.socket.destroy()
    await checkBooks(t, r, { requests: 2, aborted: 2 })
  })

  t.test(`${h.name}: a paused answer's 'drain', emitted while a pipelined answer behind it is relayed, resumes nothing inside that relay`, async t => {
    let r!: Rig
    // /big streams until the front's socket to the client is full (a write returned
    // false: the balancer paused that attempt); /after answers then.
    let filled = false
    const full = (): boolean => (filled ||= r.conns.sockets().some(s => s.writableNeedDrain))
    const paused = (): Promise<void> => until(full, 10_000, 'the first answer to fill the client connection')
    r = await rig(t, h, { handle: routes({ blocked: signal(), ready: paused, full }) })
    const c = new RawClient(r.port)
    c.socket.pause() // a client that reads nothing yet: the first answer fills every buffer
    await c.write('GET /api/big HTTP/1.1\r\nHost: x\r\n\r\nGET /api/after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    // /after's queued response buffers its answer (under its high-water mark: that
    // attempt completes) and Node emits 'drain' on the first response from inside
    // that write, i.e. inside undici's parser for /after.
    await until(() => r.b.stats().upstreams[0]!.outcomes['2xx'] + r.b.stats().upstreams[0]!.outcomes.reset >= 1, 10_000, 'the pipelined answer to be relayed')
    c.socket.resume()
    await within(c.closed, 10_000, 'the client connection to close after both answers')
    const answers = c.answers()
    t.same(answers.map(a => [a.status, a.complete]), [[200, true], [200, true]], 'both answers arrive complete')
    t.equal(answers[1]?.body.length, 1024, 'the pipelined answer is whole')
    await checkBooks(t, r, { requests: 2, aborted: 0 })
  })

  t.test(`${h.name}: an early answer larger than a response buffer, with Connection: close, queued behind another (undici #5360)`, async t => {
    const release = signal()
    const EARLY = 20_000
    const r = await rig(t, h, {
      handle: (req, res) => {
        if (req.url!.startsWith('/hold')) {
          req.resume()
          void release.promise.then(() => res.end('held'))
          return
        }
        // 413 before reading the upload, then the connection closed: the head and body
        // go out in one write (one read for the balancer), the end of stream after them.
        res.writeHead(413, { 'content-length': EARLY, connection: 'close' }).end(Buffer.alloc(EARLY, 'e'))
      },
    })
    const c = new RawClient(r.port)
    const size = 1 << 20
    await c.write(`GET /api/hold HTTP/1.1\r\nHost: x\r\n\r\nPOST /api/early HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`)
    const upload = c.write(Buffer.alloc(size, 'u'))
    // Its queued response took the whole early answer (the write returned false: the
    // attempt paused at the end of what it read) and then the end of stream: undici's
    // parser, paused, met the end. The attempt completes there, before its turn.
    await until(() => r.b.stats().upstreams[0]!.outcomes['4xx'] === 1, 10_000, 'the early answer to complete')
    release.fire()
    await upload
    await within(c.closed, 10_000, 'the client connection to close after both answers')
    const answers = c.answers()
    t.same(answers.map(a => [a.status, a.complete]), [[200, true], [413, true]], 'the held answer, then the early answer, both whole')
    t.equal(answers[1]?.body.length, EARLY, 'the early answer\'s body is all there')
    await checkBooks(t, r, { requests: 2, aborted: 0 })
  })
}

/** The HTTP/2 orderings (Fastify `http2: true`): a stream reset is a client gone, never a body that ended. */
export function runInFlightH2 (t: Test, h: AdapterHarness): void {
  t.test(`${h.name} (http2): a stream reset before the upstream connection is up never reaches the upstream as a complete request`, async t => {
    for (const sent of [-1, 0, 1000]) {
      let r!: Rig
      const connecting = signal()
      const streamClosed = signal()
      r = await rig(t, h, { handle: echo, connect: heldConnector(() => { connecting.fire(); return streamClosed.promise }) })
      ;(r.server as Http2Server).on('stream', (s: ServerHttp2Stream) => s.once('close', () => streamClosed.fire()))
      const session = connect(r.origin)
      // -1: a GET, no body (its response's 'close' alone tells the client left).
      const stream = session.request({ ':method': sent < 0 ? 'GET' : 'POST', ':path': '/api/x' }, { endStream: sent < 0 })
      stream.on('error', () => {})
      if (sent > 0) stream.write(Buffer.alloc(sent, 'p'))
      await connecting.promise
      // node:http2's compat request *ends* when its stream closes, reset or not.
      stream.close(http2.constants.NGHTTP2_CANCEL)
      await streamClosed.promise
      session.close()
      await checkBooks(t, r, { requests: 1, aborted: 1 })
      t.same(r.seen.filter(s => s.complete).map(s => s.bytes), [], `${sent < 0 ? 'a GET reset' : `reset after ${sent} body bytes`}: no complete request reached the upstream`)
    }
  })
}
