/**
 * The shared FAULTS table: what happens to real traffic when upstreams crash, flap,
 * slow down or die mid-body, run against both adapters (faults.fastify.test.ts,
 * faults.express.test.ts) through an AdapterHarness. Real upstreams on 127.0.0.1:0,
 * real sockets, no mocks. Every fault is injected at a moment chosen by waiting for
 * a condition (requests seen by the upstream, counters in the balancer, a stalled
 * socket), never by sleeping and hoping; every wait and every request has a deadline,
 * so a hang fails the test instead of stalling it.
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { Readable } from 'node:stream'
import type { Test } from 'tap'
import type { WebSocket } from 'ws'
import { leastConnections, roundRobin, stickyCookie, type Balancer } from '@affinity/core'
import type { AdapterHarness } from './harness.js'
import {
  MB, SECRET_A, balancer, balancerCookies, byName, cookieValue, countBy, entries, idOf, upstreams, within, wsUrl,
} from './scenarios.js'
import { CookieJar, nextMessage, openWebSocket, request, until, type RawResponse } from '../helpers/http.js'
import { pattern, patternSha, type TestUpstream } from '../helpers/upstreams.js'

export interface Fault {
  name: string
  run (t: Test, h: AdapterHarness): Promise<void>
}

// ---------------------------------------------------------------------------
// helpers

/** The balancer's view of one upstream (by the test upstream's id). */
function stateOf (b: Balancer, up: TestUpstream): ReturnType<Balancer['list']>[number] | undefined {
  return b.list().find(u => u.id === idOf(up))
}

/** Whether `res` is one of the balancer's own JSON errors { statusCode, error, message } with one of these statuses. */
function isCleanError (res: RawResponse, statuses: readonly number[]): boolean {
  if (!statuses.includes(res.status)) return false
  if (!/^application\/json/.test(String(res.headers['content-type']))) return false
  try {
    const body = res.json()
    return Object.keys(body).sort().join(',') === 'error,message,statusCode' &&
      body.statusCode === res.status && typeof body.error === 'string' && typeof body.message === 'string'
  } catch {
    return false
  }
}

/** The balancer's own Set-Cookie lines among these headers. */
function affinityLines (setCookie: string | string[] | undefined): string[] {
  const lines = setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie]
  return lines.filter(l => l.startsWith('affinity='))
}

/** A one-line description of an answer, for assertion messages. */
function describe (res: RawResponse | undefined, err?: unknown): string {
  if (res === undefined) return `no answer (${(err as Error | undefined)?.message ?? 'unknown error'})`
  return `${res.status} ${res.body.toString('utf8').slice(0, 120)}`
}

/** `size` bytes of the test pattern in 256 KB chunks; the second half waits for `gate`. */
function gatedPattern (size: number, gate: Promise<void>): Readable & { halfSent: boolean } {
  let off = 0
  let open = false
  const chunk = 256 * 1024
  const stream = new Readable({
    read () {
      if (off >= size) {
        this.push(null)
        return
      }
      if (off >= size / 2 && !open) {
        stream.halfSent = true
        void gate.then(() => {
          open = true
          this._read(chunk)
        })
        return
      }
      const n = Math.min(chunk, size - off)
      this.push(pattern(off, n))
      off += n
    },
  }) as Readable & { halfSent: boolean }
  stream.halfSent = false
  return stream
}

interface Upload { res?: RawResponse, err?: unknown }

/**
 * POSTs `body` and settles once the exchange is over for the client: the answer read
 * and the request itself finished (its whole body handed to the OS) or its connection
 * gone, so no upload is left dangling behind an answer.
 */
function upload (url: string, body: Readable, agent: http.Agent | false): Promise<Upload> {
  return new Promise((resolve) => {
    let res: RawResponse | undefined
    let err: unknown
    let requestOver = false
    const done = (): void => { if ((res !== undefined || err !== undefined) && requestOver) resolve({ res, err }) }
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/octet-stream' } }, (r) => {
      const chunks: Buffer[] = []
      r.on('data', (c: Buffer) => chunks.push(c))
      r.on('error', (e) => { err = e; done() })
      r.on('end', () => {
        const b = Buffer.concat(chunks)
        res = { status: r.statusCode ?? 0, headers: r.headers, body: b, json: () => JSON.parse(b.toString('utf8')) }
        done()
      })
    })
    req.on('finish', () => { requestOver = true; done() })
    req.on('close', () => { requestOver = true; done() })
    req.on('error', (e) => { err ??= e; requestOver = true; done() })
    body.pipe(req)
  })
}

/**
 * A client that writes its whole request before it reads the answer, as simple HTTP
 * clients do (Python's requests, many SDKs): POSTs `size` bytes with a Content-Length
 * over a raw socket, with backpressure. `stalled()` tells when its socket has been full
 * and not a byte moved since the last look; `result` settles when every byte is written
 * and a whole answer has arrived, or rejects when the connection fails first.
 */
function writeThenRead (url: string, path: string, size: number): { stalled (): boolean, written (): number, result: Promise<RawResponse> } {
  const { hostname, port } = new URL(url)
  const socket = net.connect(Number(port), hostname)
  const block = pattern(0, 64 * 1024)
  const received: Buffer[] = []
  let lastLook = -1
  const answer = new Promise<RawResponse>((resolve, reject) => {
    socket.on('data', (c: Buffer) => {
      received.push(c)
      const all = Buffer.concat(received)
      const end = all.indexOf('\r\n\r\n')
      if (end === -1) return
      const head = all.subarray(0, end).toString('latin1').split('\r\n')
      const headers: http.IncomingHttpHeaders = {}
      for (const line of head.slice(1)) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      const body = all.subarray(end + 4)
      if (body.length < Number(headers['content-length'] ?? 0)) return
      resolve({ status: Number(head[0]!.split(' ')[1]), headers, body, json: () => JSON.parse(body.toString('utf8')) })
    })
    socket.on('error', reject)
    socket.on('close', () => reject(new Error(`connection closed after ${socket.bytesWritten} bytes written`)))
  })
  answer.catch(() => {})
  const closed = once(socket, 'close').then(() => { throw new Error(`connection closed after ${socket.bytesWritten} bytes written`) })
  closed.catch(() => {})
  const sent = (async () => {
    await once(socket, 'connect')
    socket.write(`POST ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\ncontent-type: application/octet-stream\r\ncontent-length: ${size}\r\n\r\n`)
    for (let off = 0; off < size; off += block.length) {
      if (!socket.write(block.subarray(0, Math.min(block.length, size - off)))) {
        await Promise.race([once(socket, 'drain'), closed])
      }
    }
  })()
  return {
    stalled () {
      if (!socket.writableNeedDrain) return false
      const before = lastLook
      lastLook = socket.bytesWritten
      return before === lastLook
    },
    written: () => socket.bytesWritten,
    result: Promise.all([sent, answer]).then(([, res]) => res).finally(() => socket.destroy()),
  }
}

/** A deferred gate: `open()` resolves `promise`. */
function gate (): { promise: Promise<void>, open (): void } {
  let open!: () => void
  const promise = new Promise<void>(resolve => { open = resolve })
  return { promise, open }
}

const DEADLINE = 20_000
/**
 * How long a client of a dead upstream may wait for the proxy to end its exchange (see a
 * download cut, finish a held-up upload): the proxy sees the upstream die within
 * milliseconds. Kept below Node's default keepAliveTimeout (5 s), after which the server
 * closes a quiet keep-alive connection anyway — a proxy that ended a truncated response
 * normally, or left an upload stalled, would otherwise pass, rescued by that timer.
 */
const PROMPT = 4000

// ---------------------------------------------------------------------------
// the table

export const FAULTS: Fault[] = [
  {
    name: 'an upstream crashes under load: only requests in flight fail (clean 502), its users are re-pinned, nobody else moves',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const b = balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) })
      const app = await h.start(t, { source: { balancer: b } })
      const doomed = byName(ups, 'S2')
      // Every request takes the upstream 10 ms, as real handlers do: under load some are
      // always in flight there when it crashes.
      for (const u of ups) u.delayMs = 10

      interface Rec { user: number, item: string, beforeKill: boolean, atKill: boolean, res?: RawResponse, err?: unknown }
      interface User { i: number, jar: CookieJar, pinned: string, recs: Rec[], afterKill: number }
      const USERS = 40
      const AFTER = 5 // requests each user makes after the crash
      let killed = false
      const pending = new Set<Rec>()

      const add = async (u: User, item: string): Promise<Rec> => {
        const rec: Rec = { user: u.i, item, beforeKill: !killed, atKill: false }
        pending.add(rec)
        try {
          const cookie = u.jar.header()
          rec.res = await within(request(`${app.base}/cart/add?item=${item}`, {
            method: 'POST',
            headers: { 'x-user': `user${u.i}`, ...(cookie === undefined ? {} : { cookie }) },
          }), DEADLINE, `user ${u.i} ${item}`)
          u.jar.store(rec.res.headers['set-cookie'])
        } catch (err) {
          rec.err = err
        } finally {
          pending.delete(rec)
        }
        u.recs.push(rec)
        return rec
      }

      // Pin every user first (one at a time: leastConnections' tie rotation spreads them evenly).
      const users: User[] = []
      for (let i = 0; i < USERS; i++) {
        const u: User = { i, jar: new CookieJar(), pinned: '', recs: [], afterKill: 0 }
        const rec = await add(u, 'pin')
        if (rec.res?.status !== 200) throw new Error(`pinning user ${i}: ${describe(rec.res, rec.err)}`)
        u.pinned = rec.res.json().name
        users.push(u)
      }
      const onDoomed = users.filter(u => u.pinned === doomed.name)
      t.same(countBy(users.map(u => u.pinned)), { S1: 14, S2: 13, S3: 13 }, '40 users spread over 3 upstreams')

      // Everyone shops concurrently; each keeps going until it made AFTER requests after the crash.
      const loops = users.map(async (u) => {
        for (let k = 0; !killed || u.afterKill < AFTER; k++) {
          const rec = await add(u, `i${k}`)
          if (!rec.beforeKill) u.afterKill++
        }
      })

      // Slow requests from users pinned to the doomed upstream (their own jars, the same cookie):
      // POSTs may not be replayed once they reached it, GETs are replayed elsewhere.
      await until(() => users.every(u => u.recs.length >= 4), 10_000, 'every user shopping under load')
      const slowClient = (method: string, ms: number): Promise<{ res?: RawResponse, err?: unknown }> => {
        const cookie = onDoomed[0]!.jar.header()!
        return within(request(`${app.base}/slow?ms=${ms}`, { method, headers: { cookie } }), DEADLINE, `slow ${method}`)
          .then(res => ({ res }), (err: unknown) => ({ err }))
      }
      const slowPosts = [slowClient('POST', 30_000), slowClient('POST', 30_000), slowClient('POST', 30_000)]
      const slowGets = [slowClient('GET', 1500), slowClient('GET', 1500)]
      await until(() => doomed.seen.filter(s => s.url.startsWith('/slow')).length === 5, 5000, 'the slow requests to reach the doomed upstream')

      // The crash: sockets destroyed, listener closed, all at once.
      // A request the balancer hands to the dead upstream after this point is not counted,
      // and must not fail: a refused connection is retried elsewhere, and undici checks an
      // idle keep-alive connection for a pending FIN for one event-loop turn before writing
      // on it, so no POST is written onto a connection the crash already closed.
      const inFlightAtKill = stateOf(b, doomed)!.inFlight
      for (const rec of pending) rec.atKill = true
      killed = true
      const closed = doomed.close()
      t.ok(inFlightAtKill >= 5, `${inFlightAtKill} requests in flight on ${doomed.name} at the crash (the 5 slow ones at least)`)

      await within(Promise.all(loops), DEADLINE, 'shopping loops to finish')
      const posts = await Promise.all(slowPosts)
      const gets = await Promise.all(slowGets)
      await closed

      // The slow POSTs had reached the upstream: not replayed, a clean 502 each.
      for (const p of posts) t.ok(p.res !== undefined && isCleanError(p.res, [502]), `slow POST in flight: clean JSON 502 (${describe(p.res, p.err)})`)
      // The slow GETs are idempotent: replayed on a live upstream, which re-pins the user.
      for (const g of gets) {
        t.equal(g.res?.status, 200, `slow GET in flight: replayed (${describe(g.res, g.err)})`)
        const name = g.res?.status === 200 ? g.res.json().name : undefined
        t.ok(name !== undefined && name !== doomed.name, `slow GET answered by a live upstream (${name})`)
        t.equal(g.res === undefined ? 0 : balancerCookies(g.res).length, 1, 'with a rewritten cookie')
      }

      const all = users.flatMap(u => u.recs)
      t.same(all.filter(r => r.res === undefined).map(r => String(r.err)), [], 'every request got an HTTP answer')
      const failed = all.filter(r => r.res !== undefined && r.res.status !== 200)
      const unclean = failed.filter(r => !isCleanError(r.res!, [502]))
      t.same(unclean.map(r => describe(r.res)), [], 'every failure is a clean JSON 502')
      const stray = failed.filter(r => !r.atKill || users[r.user]!.pinned !== doomed.name)
      t.same(stray.map(r => `user${r.user} ${r.item}`), [], 'only requests in flight on the crashed upstream failed')
      // The slow GETs were in flight too, and were replayed: the POSTs in flight are the rest.
      t.ok(failed.length + posts.length <= inFlightAtKill - gets.length,
        `failures (${failed.length} cart + ${posts.length} slow POST) ≤ POSTs in flight on ${doomed.name} at the crash (${inFlightAtKill - gets.length})`)

      // Nobody pinned elsewhere moved, and their carts are whole.
      let movedElsewhere = 0
      let cartErrors = 0
      for (const u of users) {
        const expected = new Map<string, string[]>()
        for (const r of u.recs) {
          if (r.res?.status !== 200) continue
          const body = r.res.json()
          const cart = expected.get(body.name) ?? []
          cart.push(r.item)
          expected.set(body.name, cart)
          // Never a 200 with a wrong body: the answer is this user's own cart, with this item last.
          if (JSON.stringify(body.cart) !== JSON.stringify(cart)) cartErrors++
        }
        if (u.pinned !== doomed.name) {
          // recs[0] pinned the user (the only answer with a cookie).
          const wrong = u.recs.slice(1).filter(r => r.res?.status !== 200 || r.res.json().name !== u.pinned || balancerCookies(r.res).length > 0)
          if (wrong.length > 0) movedElsewhere++
          t.equal(byName(ups, u.pinned).carts.get(`user${u.i}`)?.length, u.recs.length, `user ${u.i} (${u.pinned}): every add on its own upstream`)
        }
      }
      t.equal(movedElsewhere, 0, 'no user pinned to a live upstream moved or got a new cookie')
      t.equal(cartErrors, 0, 'every 200 carried the right cart')

      // Every user of the crashed upstream was re-pinned on its next request, then stuck.
      for (const u of onDoomed) {
        const ok = u.recs.filter(r => r.res?.status === 200).slice(1)
        const moved = ok.findIndex(r => r.res!.json().name !== doomed.name)
        const before = ok.slice(0, moved === -1 ? ok.length : moved)
        const after = moved === -1 ? [] : ok.slice(moved)
        const target = after[0]?.res!.json().name as string | undefined
        t.ok(before.every(r => r.beforeKill && balancerCookies(r.res!).length === 0), `user ${u.i}: on ${doomed.name} only before the crash`)
        t.ok(target !== undefined && target !== doomed.name, `user ${u.i}: moved to a live upstream (${target})`)
        t.equal(after[0] === undefined ? 0 : balancerCookies(after[0].res!).length, 1, `user ${u.i}: one new cookie with the move`)
        t.ok(after.length >= AFTER && after.slice(1).every(r => r.res!.json().name === target && balancerCookies(r.res!).length === 0),
          `user ${u.i}: sticks to ${target} with the new cookie (${after.length} answers)`)
        const first = u.recs.findIndex(r => !r.beforeKill)
        t.ok(u.recs.slice(first).every(r => r.res?.status === 200), `user ${u.i}: every request after the crash succeeded`)
        if (target !== undefined) {
          t.same(byName(ups, target).carts.get(`user${u.i}`), after.map(r => r.item), `user ${u.i}: a fresh cart on ${target}`)
        }
      }
    },
  },

  {
    name: 'membership flaps under load: no request fails; a slow request on the removed upstream finishes',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const target = byName(ups, 'S3')
      const b = balancer(t, { upstreams: entries(ups), strategy: roundRobin() })
      const app = await h.start(t, { source: { balancer: b } })

      let running = true
      const fast: Array<{ res?: RawResponse, err?: unknown, post: boolean }> = []
      const body = pattern(0, 4096)
      const bodySha = createHash('sha256').update(body).digest('hex')
      const client = async (i: number): Promise<void> => {
        for (let k = 0; running; k++) {
          const post = (i + k) % 2 === 1
          const p = post
            ? request(`${app.base}/upload`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } })
            : request(`${app.base}/echo?c=${i}&k=${k}`)
          await within(p, DEADLINE, 'request').then(res => fast.push({ res, post }), (err: unknown) => fast.push({ err, post }))
        }
      }
      // Slow requests all along: some are always in flight, on every upstream in turn.
      const slow: Array<{ res?: RawResponse, err?: unknown, inFlightAtRemoval: boolean }> = []
      const slowInFlight = new Set<{ inFlightAtRemoval: boolean }>()
      const slowClient = async (): Promise<void> => {
        while (running) {
          const rec = { inFlightAtRemoval: false }
          slowInFlight.add(rec)
          await within(request(`${app.base}/slow?ms=500`), DEADLINE, 'slow request')
            .then(res => slow.push({ ...rec, res }), (err: unknown) => slow.push({ ...rec, err }))
          slowInFlight.delete(rec)
        }
      }
      const clients = [...Array.from({ length: 10 }, (_, i) => client(i)), slowClient(), slowClient(), slowClient()]

      const slowSeen = (): number => target.seen.filter(s => s.url.startsWith('/slow')).length
      const slowAnswered = (): number => slow.filter(s => s.res?.status === 200 && s.res.json().name === target.name).length
      const events: string[] = []
      b.on('removed', u => events.push(`-${u.id}`)).on('added', u => events.push(`+${u.id}`))
      let inFlightOnTarget = 0
      for (let flip = 0; flip < 10; flip++) {
        if (flip % 2 === 0) {
          if (flip === 0) {
            // The first removal happens with a slow request in flight on the upstream.
            await until(() => slowSeen() > slowAnswered() && stateOf(b, target)!.inFlight > 0, 5000, 'a slow request in flight on S3')
            inFlightOnTarget = slowSeen() - slowAnswered()
            for (const rec of slowInFlight) rec.inFlightAtRemoval = true
          }
          b.remove(idOf(target))
        } else {
          b.add({ url: target.url, id: idOf(target) })
        }
        await new Promise(resolve => setTimeout(resolve, 200))
      }
      const servedAfter = fast.length
      await until(() => fast.slice(servedAfter).some(f => f.res?.status === 200 && f.res.json().name === target.name), 5000, 'S3 to take traffic again')
      running = false
      await within(Promise.all(clients), DEADLINE, 'clients to stop')

      t.same(events, Array.from({ length: 10 }, (_, i) => `${i % 2 === 0 ? '-' : '+'}${idOf(target)}`), 'S3 removed and added back 5 times')
      t.same(b.list().map(u => u.id).sort(), entries(ups).map(e => e.id).sort(), 'S3 is a member again at the end')
      const failures = [...fast, ...slow].filter(r => r.res?.status !== 200)
      t.same(failures.map(f => describe(f.res, f.err)), [], `no request failed (${fast.length} fast, ${slow.length} slow)`)
      t.ok(fast.length >= 100, `steady load: ${fast.length} requests during the flaps`)
      const badPosts = fast.filter(f => f.post && f.res?.status === 200 && (f.res.json().bytes !== body.length || f.res.json().sha256 !== bodySha))
      t.equal(badPosts.length, 0, 'every POST body arrived whole (retried bodies included)')
      const names = countBy(fast.filter(f => f.res?.status === 200).map(f => f.res!.json().name))
      t.same(Object.keys(names).sort(), ['S1', 'S2', 'S3'], `every upstream served (${JSON.stringify(names)})`)
      const survivors = slow.filter(s => s.inFlightAtRemoval && s.res?.status === 200 && s.res.json().name === target.name)
      t.ok(survivors.length >= inFlightOnTarget,
        `the ${inFlightOnTarget} slow request(s) in flight on S3 when it was removed finished there with 200 (${survivors.length})`)
    },
  },

  {
    name: 'a slow upstream gets a clearly smaller share under leastConnections, and nothing times out',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const slowUp = byName(ups, 'S3')
      slowUp.delayMs = 1000 // far slower than a fast answer even on a loaded machine, where those slow down too
      const b = balancer(t, { upstreams: entries(ups), strategy: leastConnections(), timeoutMs: 5000 })
      const app = await h.start(t, { source: { balancer: b } })
      const ag = new http.Agent({ keepAlive: true, maxSockets: 12 })
      t.teardown(() => ag.destroy())

      const TOTAL = 300
      let next = 0
      const results: Array<{ res?: RawResponse, err?: unknown, ms: number }> = []
      const worker = async (): Promise<void> => {
        while (next < TOTAL) {
          next++
          const started = Date.now()
          await within(request(`${app.base}/echo`, { agent: ag }), DEADLINE, 'request')
            .then(res => results.push({ res, ms: Date.now() - started }), (err: unknown) => results.push({ err, ms: Date.now() - started }))
        }
      }
      await within(Promise.all(Array.from({ length: 12 }, worker)), DEADLINE, 'load to finish')

      const failures = results.filter(r => r.res?.status !== 200)
      t.same(failures.map(f => describe(f.res, f.err)), [], `all ${results.length} requests answered 200 (no 504)`)
      const names = results.filter(r => r.res?.status === 200).map(r => ({ name: r.res!.json().name as string, ms: r.ms }))
      const share = countBy(names.map(n => n.name))
      const slowCount = share.S3 ?? 0
      t.ok(slowCount >= 1, `the slow upstream still takes requests (${slowCount})`)
      t.ok(slowCount * 5 <= Math.min(share.S1 ?? 0, share.S2 ?? 0), `the slow upstream's share is clearly smaller: ${JSON.stringify(share)}`)
      const slowTimes = names.filter(n => n.name === 'S3').map(n => n.ms)
      t.ok(slowTimes.every(ms => ms >= 290), `S3 answered slowly (${Math.min(...slowTimes)} ms at least)`)
      t.equal(slowUp.seen.length, slowCount, 'S3 saw exactly the requests it answered')
    },
  },

  {
    name: 'uploads while their upstream dies: exact 200 or a clean JSON error, never a hang; a download cut mid-stream is an error',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const b = balancer(t, { upstreams: entries(ups), strategy: roundRobin() })
      const app = await h.start(t, { source: { balancer: b } })

      const SIZE = 2 * MB
      const COUNT = 20
      const expectedSha = patternSha(SIZE)
      const g = gate()
      const streams = Array.from({ length: COUNT }, () => gatedPattern(SIZE, g.promise))
      const uploads = streams.map(body => within(upload(`${app.base}/upload`, body, false), DEADLINE, 'upload')
        .then(u => u, (err: unknown): Upload => ({ res: undefined, err })))
      const uploadsSeen = (u: TestUpstream): number => u.seen.filter(s => s.url === '/upload').length
      // Every upload has reached its upstream and sent half its body; the other half waits.
      await until(() => ups.reduce((n, u) => n + uploadsSeen(u), 0) === COUNT && streams.every(s => s.halfSent), 10_000, 'all uploads mid-body')
      const victim = [...ups].sort((a, b) => uploadsSeen(b) - uploadsSeen(a))[0]!
      const onVictim = uploadsSeen(victim)
      t.ok(onVictim >= 6, `${onVictim} uploads in progress on ${victim.name}`)
      await victim.close()
      g.open()
      const outcomes = await Promise.all(uploads)

      t.same(outcomes.filter(o => o.res === undefined).map(o => String(o.err)), [],
        'every upload got an answer and was over (body sent, or connection closed) before its deadline')
      const ok = outcomes.filter(o => o.res?.status === 200)
      const wrong = ok.filter(o => o.res!.json().bytes !== SIZE || o.res!.json().sha256 !== expectedSha || o.res!.json().name === victim.name)
      t.same(wrong.map(o => describe(o.res)), [], 'every 200 carries the exact byte count and sha256, from a live upstream')
      const errors = outcomes.filter(o => o.res !== undefined && o.res.status !== 200)
      t.same(errors.filter(o => !isCleanError(o.res!, [502, 503, 504])).map(o => describe(o.res)), [], 'every failure is a clean JSON 502/503/504')
      t.equal(ok.length, COUNT - onVictim, 'the uploads on live upstreams all completed')
      t.equal(errors.length, onVictim, 'only the uploads on the dead upstream failed')

      // An upload held up by backpressure when its upstream dies (the upstream took the
      // request but never read the body, so every buffer on the way is full), from a client
      // that writes its whole body before it reads: the proxy must go on reading (and
      // discarding) the rest, or the client never gets to its 502 — its upload stalls until
      // a server timer resets the connection.
      const stuck = await upstreams(t, 1, 'B')
      stuck[0]!.delayMs = 60_000
      const sapp = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(stuck) }) } })
      const HELD = 32 * MB // far more than the buffers between client and upstream hold (~10 MB)
      const raw = writeThenRead(sapp.url, new URL(sapp.base).pathname + '/upload', HELD)
      await until(raw.stalled, 10_000, 'the upload to stall')
      const writtenAtKill = raw.written()
      await stuck[0]!.close()
      const heldUp = await within(raw.result, PROMPT, 'the held-up upload to be over')
        .then(res => ({ res, err: undefined as unknown }), (err: unknown) => ({ res: undefined, err }))
      t.ok(writtenAtKill > MB && writtenAtKill < HELD, `the upstream died mid-body (${writtenAtKill} of ${HELD} bytes written)`)
      t.ok(heldUp.res !== undefined && isCleanError(heldUp.res, [502]),
        `held-up upload: the whole body could be sent, then a clean JSON 502 read (${describe(heldUp.res, heldUp.err)})`)

      // A download whose upstream dies mid-stream: the client must see the cut.
      const dl = await upstreams(t, 1, 'D')
      const db = balancer(t, { upstreams: entries(dl) })
      const dapp = await h.start(t, { source: { balancer: db } })
      const TOTAL = 64 * MB
      // A keep-alive client, as a browser is: with `Connection: close` the end of the connection
      // would cut a response the proxy merely ended early, hiding that bug.
      const ka = new http.Agent({ keepAlive: true })
      t.teardown(() => ka.destroy())
      const cut = await within(new Promise<{ status: number, bytes: number, error?: string, complete: boolean }>((resolve) => {
        let bytes = 0
        let status = 0
        http.get(`${dapp.base}/download?bytes=${TOTAL}`, { agent: ka }, (res) => {
          status = res.statusCode ?? 0
          let paused = false
          res.on('data', (c: Buffer) => {
            bytes += c.length
            if (!paused && bytes >= MB) {
              // Stop reading: backpressure stalls the upstream mid-body, then it dies.
              paused = true
              res.pause()
              void dl[0]!.close().then(() => res.resume())
            }
          })
          res.on('error', (err) => resolve({ status, bytes, error: err.message, complete: res.complete }))
          res.on('end', () => resolve({ status, bytes, complete: res.complete }))
        }).on('error', (err) => resolve({ status, bytes, error: err.message, complete: false }))
      }), PROMPT, 'the client to see the cut')
      t.equal(cut.status, 200, 'the download had started')
      t.ok(cut.bytes >= MB && cut.bytes < TOTAL, `part of the body arrived (${cut.bytes} of ${TOTAL} bytes)`)
      t.notOk(cut.complete, 'the response is not complete')
      t.type(cut.error, 'string', `the client sees an error (${cut.error}), not a short body passed off as complete`)
    },
  },

  {
    name: "WebSocket clients of a dead upstream reconnect elsewhere with a new cookie; the others stay put",
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const b = balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) })
      const app = await h.start(t, { source: { balancer: b } })
      const dead = byName(ups, 'S2')

      interface Client { i: number, jar: CookieJar, ws: WebSocket, name: string, closed: boolean }
      const clients: Client[] = []
      t.teardown(() => { for (const c of clients) c.ws.terminate() })
      for (let i = 0; i < 9; i++) {
        // First contact over WebSocket: the cookie comes with the 101.
        const { ws, hello, upgradeHeaders } = await openWebSocket(`${wsUrl(app.base)}/chat?c=${i}`)
        const jar = new CookieJar()
        jar.store(upgradeHeaders['set-cookie'])
        const c: Client = { i, jar, ws, name: hello.name, closed: false }
        ws.once('close', () => { c.closed = true })
        clients.push(c)
        t.ok(jar.cookies.has('affinity'), `client ${i}: pinned by the 101's cookie`)
      }
      t.same(countBy(clients.map(c => c.name)), { S1: 3, S2: 3, S3: 3 }, 'sockets spread by leastConnections')
      for (const c of clients) {
        const res = await request(`${app.base}/echo`, { headers: { cookie: c.jar.header()! } })
        t.equal(res.json().name, c.name, `client ${c.i}: its cookie pins HTTP to ${c.name} too`)
      }

      const victims = clients.filter(c => c.name === dead.name)
      const others = clients.filter(c => c.name !== dead.name)
      await dead.close()
      await until(() => victims.every(c => c.closed), 5000, "the dead upstream's sockets to close")
      await until(() => stateOf(b, dead)!.websockets === 0, 5000, "the dead upstream's tunnels to be counted closed")
      t.same(others.filter(c => c.closed).map(c => c.i), [], 'no socket on a live upstream closed')

      for (const c of victims) {
        const before = c.jar.cookies.get('affinity')
        const again = await within(openWebSocket(`${wsUrl(app.base)}/chat?c=${c.i}`, { cookie: c.jar.header()! }), DEADLINE, 'reconnect')
        const cookies = affinityLines(again.upgradeHeaders['set-cookie'])
        t.not(again.hello.name, dead.name, `client ${c.i}: reconnected to a live upstream (${again.hello.name})`)
        t.equal(cookies.length, 1, `client ${c.i}: a new cookie on the 101`)
        t.not(cookies[0] === undefined ? before : cookieValue(cookies[0]), before, `client ${c.i}: the cookie changed`)
        c.jar.store(cookies)
        c.ws = again.ws
        c.name = again.hello.name
        c.closed = false
        again.ws.once('close', () => { c.closed = true })
        // The new cookie sticks, over HTTP and WebSocket, and is not re-issued.
        const res = await request(`${app.base}/echo`, { headers: { cookie: c.jar.header()! } })
        t.equal(res.json().name, c.name, `client ${c.i}: HTTP follows the new cookie`)
        t.equal(balancerCookies(res).length, 0, `client ${c.i}: no further cookie`)
        const third = await openWebSocket(`${wsUrl(app.base)}/chat`, { cookie: c.jar.header()! })
        t.equal(third.hello.name, c.name, `client ${c.i}: another socket lands there too`)
        t.same(affinityLines(third.upgradeHeaders['set-cookie']), [], `client ${c.i}: without a new cookie`)
        third.ws.close()
      }

      for (const c of others) {
        t.notOk(c.closed, `client ${c.i}: still connected`)
        c.ws.send(`still-${c.i}`)
        t.equal(await within(nextMessage(c.ws), 5000, 'echo'), `${c.name}:still-${c.i}`, `client ${c.i}: the same tunnel to ${c.name} still carries messages`)
        const res = await request(`${app.base}/echo`, { headers: { cookie: c.jar.header()! } })
        t.equal(res.json().name, c.name, `client ${c.i}: still pinned to ${c.name}`)
        t.equal(balancerCookies(res).length, 0, `client ${c.i}: no new cookie`)
      }
      for (const c of victims) {
        c.ws.send('moved')
        t.equal(await within(nextMessage(c.ws), 5000, 'echo'), `${c.name}:moved`, `client ${c.i}: its new socket carries messages`)
      }
      // The extra sockets opened above are closed: wait for the count to settle, then compare.
      await until(() => b.list().reduce((n, u) => n + u.websockets, 0) === 9, 5000, 'the extra sockets to be counted closed')
      const counted = Object.fromEntries(b.list().filter(u => u.websockets > 0).map(u => [ups.find(x => idOf(x) === u.id)!.name, u.websockets]))
      t.same(counted, countBy(clients.map(c => c.name)), `the balancer counts each open socket on its upstream (${JSON.stringify(counted)})`)
      for (const c of clients) c.ws.close()
    },
  },
]

export function runFaults (t: Test, harness: AdapterHarness): void {
  for (const f of FAULTS) t.test(`${harness.name}: ${f.name}`, t => f.run(t, harness))
}
