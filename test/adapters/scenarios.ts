/**
 * The shared adapter scenario table: every case runs against both adapters
 * (fastify.test.ts, express.test.ts) through an AdapterHarness, with real upstreams
 * on 127.0.0.1:0, a browser-like cookie jar and real sockets.
 */
import { createHash } from 'node:crypto'
import http from 'node:http'
import { Readable } from 'node:stream'
import type { Test } from 'tap'
import {
  consistentHash, createBalancer, ipHash, roundRobin, stickyCookie, stickyIp,
  type Balancer, type BalancerOptions, type Strategy,
} from '@affinity/core'
import { Counter, Registry } from 'prom-client'
import type { AdapterHarness, Started } from './harness.js'
import { STATUS_PAGE_SCENARIOS } from './status-page.js'
import { checkHopByHop, checkUntrustedForwarded } from '../helpers/forwarded-headers.js'
import { Browser, CookieJar, openWebSocket, nextMessage, request, until, type RawResponse } from '../helpers/http.js'
import { Scrape, expectedFromStats } from '../helpers/prometheus.js'
import { deadUrl, pattern, patternSha, startUpstream, startUpstreams, type TestUpstream } from '../helpers/upstreams.js'

export interface Scenario {
  name: string
  run (t: Test, h: AdapterHarness): Promise<void>
}

export const SECRET_A = 'secret-A-0123456789abcdefghijklmnopqrstuvwxyz'
export const SECRET_B = 'secret-B-0123456789abcdefghijklmnopqrstuvwxyz'
const SECRET_C = 'secret-C-0123456789abcdefghijklmnopqrstuvwxyz'
export const MB = 1 << 20

// ---------------------------------------------------------------------------
// helpers (also used by the adapter-specific tests)

export async function upstreams (t: Test, n: number, prefix = 'S'): Promise<TestUpstream[]> {
  const ups = await startUpstreams(n, prefix)
  t.teardown(() => Promise.all(ups.map(u => u.close())))
  return ups
}

export async function upstream (t: Test, name: string): Promise<TestUpstream> {
  const up = await startUpstream(name)
  t.teardown(() => up.close())
  return up
}

/** Upstream ids long enough that finding one inside a random cookie value by chance is impossible. */
export const idOf = (u: TestUpstream): string => `backend-${u.name}-id`
export const entries = (ups: TestUpstream[]): Array<{ url: string, id: string }> => ups.map(u => ({ url: u.url, id: idOf(u) }))
export const byName = (ups: TestUpstream[], name: string): TestUpstream => ups.find(u => u.name === name)!

/** A caller-owned balancer, closed with the test (after the app, which is torn down first). */
export function balancer (t: Test, opts: BalancerOptions): Balancer {
  const b = createBalancer(opts)
  t.teardown(() => b.close())
  return b
}

/** A keep-alive agent for bulk traffic, destroyed with the test. */
export function agent (t: Test): http.Agent {
  const a = new http.Agent({ keepAlive: true, maxSockets: 8 })
  t.teardown(() => a.destroy())
  return a
}

async function mapLimit<T, R> (items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

export function setCookies (res: RawResponse): string[] {
  const v = res.headers['set-cookie']
  return v === undefined ? [] : Array.isArray(v) ? v : [v]
}

export function balancerCookies (res: RawResponse, name = 'affinity'): string[] {
  return setCookies(res).filter(c => c.startsWith(`${name}=`))
}

export function cookieValue (line: string): string {
  const pair = line.split(';')[0]!
  return pair.slice(pair.indexOf('=') + 1)
}

export { Browser }

/** Which upstream answers GET base/echo with these headers. */
export async function whoServes (base: string, headers: http.OutgoingHttpHeaders = {}, a?: http.Agent): Promise<string> {
  const res = await request(`${base}/echo`, { headers, ...(a ? { agent: a } : {}) })
  if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.toString()}`)
  return res.json().name
}

/** Streams a download and hashes it, so 64 MB are never held in memory. */
export function download (url: string): Promise<{ status: number, headers: http.IncomingHttpHeaders, bytes: number, sha256: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      const h = createHash('sha256')
      let bytes = 0
      res.on('data', (c: Buffer) => { h.update(c); bytes += c.length })
      res.on('aborted', () => reject(new Error('response aborted')))
      res.on('error', reject)
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, sha256: h.digest('hex') }))
    }).on('error', reject)
  })
}

/** `size` bytes of the test pattern as a stream, 1 MB at a time (sent chunked). */
export function patternStream (size: number): Readable {
  let off = 0
  return new Readable({
    read () {
      if (off >= size) { this.push(null); return }
      const n = Math.min(MB, size - off)
      this.push(pattern(off, n))
      off += n
    },
  })
}

export const wsUrl = (base: string): string => base.replace(/^http/, 'ws')

/**
 * An app whose own auth (an Express middleware, a Fastify onRequest hook) runs before
 * the proxy, admitting only `Authorization: Bearer ok`: HTTP requests and WebSocket
 * upgrades alike are refused with 401 and reach no upstream; admitted ones go through.
 */
export async function checkAuthGate (t: Test, app: Started, ups: TestUpstream[]): Promise<void> {
  const denied = await request(`${app.base}/echo`)
  t.equal(denied.status, 401)
  t.same(denied.json(), { error: 'unauthorized' })
  const err = await openWebSocket(`${wsUrl(app.base)}/chat`).then(() => undefined, (e: { statusCode?: number }) => e)
  t.equal(err?.statusCode, 401, 'the upgrade is refused with 401')
  t.same(ups.map(u => u.seen.length), [0, 0], 'nothing reached an upstream')
  t.equal((await request(`${app.base}/echo`, { headers: { authorization: 'Bearer ok' } })).status, 200)
  const { ws, hello } = await openWebSocket(`${wsUrl(app.base)}/chat`, { authorization: 'Bearer ok' })
  t.equal(hello.headers.authorization, 'Bearer ok', 'an authorised upgrade goes through')
  ws.close()
}

export function countBy (names: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const n of names) out[n] = (out[n] ?? 0) + 1
  return out
}

/** Rejects if `p` has not settled within `ms` (so a drain that never resolves fails the test instead of hanging it). */
export async function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms) })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

function assertNoLeak (t: Test, body: Buffer, ports: number[]): void {
  const text = body.toString('utf8')
  t.notMatch(text, '127.0.0.1', 'error body names no upstream host')
  for (const p of ports) t.notOk(text.includes(String(p)), `error body names no upstream port (${p})`)
}

export function assertJsonError (t: Test, res: RawResponse, status: number, error: string): void {
  t.equal(res.status, status)
  t.match(String(res.headers['content-type']), /^application\/json/, 'JSON error')
  const body = res.json()
  t.same(Object.keys(body).sort(), ['error', 'message', 'statusCode'], '{ statusCode, error, message }')
  t.equal(body.statusCode, status)
  t.equal(body.error, error)
  t.type(body.message, 'string')
}

const portOf = (url: string): number => Number(new URL(url).port)

// ---------------------------------------------------------------------------
// the table

export const SCENARIOS: Scenario[] = [
  {
    name: 'round robin spreads evenly',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      // Shorthand options: the adapter builds (and closes) the balancer.
      const app = await h.start(t, { source: { upstreams: entries(ups), strategy: roundRobin() } })
      const names: string[] = []
      for (let i = 0; i < 30; i++) names.push(await whoServes(app.base))
      t.same(countBy(names), { S1: 10, S2: 10, S3: 10 }, '30 requests over 3 upstreams: 10 each')
      t.not(names[0], names[1], 'consecutive requests rotate')
    },
  },

  {
    name: 'sticky cookie keeps a user on its upstream; one Set-Cookie on the first visit only',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const b = balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) })
      const app = await h.start(t, { source: { balancer: b } })
      const users = Array.from({ length: 6 }, () => new Browser())
      const pinned: string[] = []
      for (const u of users) {
        const res = await u.get(`${app.base}/cart/add?user=me&item=first`)
        t.equal(res.status, 200)
        t.equal(balancerCookies(res).length, 1, 'exactly one balancer cookie on the first visit')
        pinned.push(res.json().name)
      }
      t.ok(new Set(pinned).size >= 2, `new users are spread (${pinned.join(',')})`)
      for (const [i, u] of users.entries()) {
        for (let k = 0; k < 10; k++) {
          const res = await u.get(`${app.base}/cart/add?user=user${i}&item=i${k}`)
          t.equal(res.json().name, pinned[i], `user ${i} request ${k} stays on ${pinned[i]}`)
          t.equal(balancerCookies(res).length, 0, 'no Set-Cookie for a pinned user')
        }
        const cart = byName(ups, pinned[i]!).carts.get(`user${i}`)
        t.equal(cart?.length, 10, `user ${i}'s whole cart is on one upstream`)
      }
    },
  },

  {
    name: 'cookie is opaque, HttpOnly, SameSite=Lax, Path=/; Secure only for https as the framework sees it',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const plain = await h.start(t, { source: { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }, trustProxy: false })
      const trusted = await h.start(t, { source: { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }, trustProxy: true })
      const forbidden = ups.flatMap(u => [u.url, `127.0.0.1:${u.port}`, String(u.port), idOf(u)])
      for (let i = 0; i < 12; i++) {
        const res = await request(`${plain.base}/echo`)
        const lines = balancerCookies(res)
        t.equal(lines.length, 1)
        const line = lines[0]!
        const value = cookieValue(line)
        const decoded = [Buffer.from(value, 'base64url').toString('latin1'), Buffer.from(value, 'base64').toString('latin1')]
        const leaks = forbidden.filter(f => [value, decodeURIComponent(value), ...decoded].some(text => text.includes(f)))
        t.same(leaks, [], `cookie ${value} names no upstream URL, host, port or id (also base64-decoded)`)
        const attrs = line.split(';').slice(1).map(s => s.trim().toLowerCase())
        t.ok(attrs.includes('httponly'), 'HttpOnly')
        t.ok(attrs.includes('samesite=lax'), 'SameSite=Lax')
        t.ok(attrs.includes('path=/'), 'Path=/')
        t.notOk(attrs.includes('secure'), 'no Secure over plain http')
      }
      const spoofed = await request(`${plain.base}/echo`, { headers: { 'x-forwarded-proto': 'https' } })
      t.notMatch(balancerCookies(spoofed)[0]!, /;\s*Secure/i, 'without trust proxy a spoofed X-Forwarded-Proto does not make it Secure')
      const viaProxy = await request(`${trusted.base}/echo`, { headers: { 'x-forwarded-proto': 'https' } })
      t.match(balancerCookies(viaProxy)[0]!, /;\s*Secure(;|$)/, 'trusted proxy says https: Secure')
      const direct = await request(`${trusted.base}/echo`)
      t.notMatch(balancerCookies(direct)[0]!, /;\s*Secure/i, 'trusted proxy, plain http: not Secure')
    },
  },

  {
    name: 'forged, garbage, foreign, truncated and huge cookies are re-pinned, never an error',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const b = balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) })
      const app = await h.start(t, { source: { balancer: b } })
      const first = await request(`${app.base}/echo`)
      const valid = cookieValue(balancerCookies(first)[0]!)
      t.equal(valid.length, 51)
      // A cookie for the same upstream ids signed under another secret.
      const other = createBalancer({ upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_C }) })
      const choice = await other.choose({ method: 'GET', url: '/', headers: {}, ip: '127.0.0.1', cookies: {} })
      await other.close()
      const foreign = cookieValue(choice.setCookie!)
      const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
      const cases: Record<string, string> = {
        'tampered (one char of the MAC)': flip(valid, 45),
        'tampered (one char of the tag)': flip(valid, 20),
        garbage: 'not-a-cookie',
        empty: '',
        'other secret': foreign,
        truncated: valid.slice(0, 40),
        'one char too long': valid + 'A',
        huge: 'A'.repeat(8192),
        'non-base64': '%%%%<script>'.padEnd(51, '!'),
      }
      for (const [what, value] of Object.entries(cases)) {
        const res = await request(`${app.base}/echo`, { headers: { cookie: `affinity=${value}; other=1` } })
        t.equal(res.status, 200, `${what}: 200`)
        const lines = balancerCookies(res)
        t.equal(lines.length, 1, `${what}: exactly one fresh cookie`)
        const fresh = cookieValue(lines[0] ?? '=')
        t.not(fresh, value, `${what}: a new value`)
        const again = await request(`${app.base}/echo`, { headers: { cookie: `affinity=${fresh}` } })
        t.equal(again.json().name, res.json().name, `${what}: the fresh cookie sticks`)
        t.equal(balancerCookies(again).length, 0, `${what}: and is not re-issued`)
      }
    },
  },

  {
    name: 'key rotation: a cookie only an older secret verifies is honoured and re-issued',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const oldApp = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) } })
      const newApp = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: [SECRET_B, SECRET_A] }) }) } })
      const users = Array.from({ length: 6 }, () => new Browser())
      const pinned: string[] = []
      for (const u of users) pinned.push(await u.visit(oldApp.base))
      t.ok(new Set(pinned).size >= 2, 'users spread over several upstreams')
      for (const [i, u] of users.entries()) {
        const oldCookie = u.cookie()
        const name = await u.visit(newApp.base)
        t.equal(name, pinned[i], `user ${i}: the old cookie is honoured`)
        const lines = balancerCookies(u.last!)
        t.equal(lines.length, 1, `user ${i}: re-issued under the new secret`)
        t.not(u.cookie(), oldCookie)
        t.equal(await u.visit(newApp.base), pinned[i], `user ${i}: the new cookie names the same upstream`)
        t.equal(balancerCookies(u.last!).length, 0, `user ${i}: and is not re-issued again`)
      }
      // The new cookie is signed by B only: the old instance cannot verify it.
      await users[0]!.visit(oldApp.base)
      t.equal(balancerCookies(users[0]!.last!).length, 1, 'a balancer without B re-pins the new cookie')
    },
  },

  {
    name: 'failover: the pinned upstream dies, the next request succeeds elsewhere with a rewritten cookie',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const b = balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) })
      const app = await h.start(t, { source: { balancer: b } })
      const user = new Browser()
      const pinned = await user.visit(app.base)
      for (let i = 0; i < 3; i++) t.equal(await user.visit(app.base), pinned)
      const before = user.cookie()
      await byName(ups, pinned).close()

      const res = await user.get(`${app.base}/echo`)
      t.equal(res.status, 200, 'no error reaches the client: the refused connection was retried')
      const moved = res.json().name
      t.not(moved, pinned, `moved off the dead upstream (${pinned} → ${moved})`)
      t.equal(balancerCookies(res).length, 1, 'the cookie is rewritten')
      t.not(user.cookie(), before)
      for (let i = 0; i < 5; i++) {
        t.equal(await user.visit(app.base), moved, 'the user sticks to the new upstream')
        t.equal(balancerCookies(user.last!).length, 0)
      }
    },
  },

  {
    name: 'scale-out moves nobody (stickyCookie and stickyIp)',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const extra = await upstream(t, 'S4')

      const bc = balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) })
      const cookieApp = await h.start(t, { source: { balancer: bc } })
      const users = Array.from({ length: 12 }, () => new Browser())
      const pinned: string[] = []
      for (const u of users) pinned.push(await u.visit(cookieApp.base))
      t.same(Object.keys(countBy(pinned)).sort(), ['S1', 'S2', 'S3'])
      bc.add({ url: extra.url, id: idOf(extra) })
      for (const [i, u] of users.entries()) {
        t.equal(await u.visit(cookieApp.base), pinned[i], `cookie user ${i} stays`)
        t.equal(balancerCookies(u.last!).length, 0)
      }
      const newcomers: string[] = []
      for (let i = 0; i < 8; i++) newcomers.push(await new Browser().visit(cookieApp.base))
      t.ok(newcomers.includes('S4'), 'new users do reach the added upstream')

      const bi = balancer(t, { upstreams: entries(ups), strategy: stickyIp() })
      const ipApp = await h.start(t, { source: { balancer: bi }, trustProxy: true })
      const ips = Array.from({ length: 12 }, (_, i) => `198.51.100.${i + 10}`)
      const bound: string[] = []
      for (const ip of ips) bound.push(await whoServes(ipApp.base, { 'x-forwarded-for': ip }))
      t.same(Object.keys(countBy(bound)).sort(), ['S1', 'S2', 'S3'])
      bi.add({ url: extra.url, id: idOf(extra) })
      for (const [i, ip] of ips.entries()) t.equal(await whoServes(ipApp.base, { 'x-forwarded-for': ip }), bound[i], `client ${ip} stays`)
      const fresh: string[] = []
      for (let i = 0; i < 8; i++) fresh.push(await whoServes(ipApp.base, { 'x-forwarded-for': `192.0.2.${i + 1}` }))
      t.ok(fresh.includes('S4'), 'new clients do reach the added upstream')
    },
  },

  {
    name: 'drain: bound users stay, new users never land there, drain() resolves when idle',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const b = balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) })
      const app = await h.start(t, { source: { balancer: b } })
      const users = Array.from({ length: 9 }, () => new Browser())
      const pinned: string[] = []
      for (const u of users) pinned.push(await u.visit(app.base))
      const target = pinned[0]!
      const targetId = idOf(byName(ups, target))
      const bound = users.filter((_, i) => pinned[i] === target)
      t.ok(bound.length >= 2, `several users on ${target}`)

      // A request in flight on the upstream keeps the drain open.
      // 800 ms: ample room for the checks below to run while it is still in flight.
      const slow = bound[0]!.get(`${app.base}/slow?ms=800`)
      await until(() => b.list().find(u => u.id === targetId)!.inFlight === 1, 2000, 'slow request in flight')
      let drained = false
      const drain = b.drain(targetId).then(() => { drained = true })
      t.equal(b.list().find(u => u.id === targetId)!.state, 'draining')
      for (const u of bound) t.equal(await u.visit(app.base), target, 'a bound user stays while draining')
      t.notOk(drained, 'not drained while a request is in flight')
      t.equal((await slow).json().name, target, 'the request in flight finished on the draining upstream')
      await within(drain, 3000, 'drain() to resolve')
      t.ok(drained, 'drain() resolved')

      const newcomers: string[] = []
      for (let i = 0; i < 12; i++) newcomers.push(await new Browser().visit(app.base))
      t.notOk(newcomers.includes(target), `no new user lands on the draining upstream (${newcomers.join(',')})`)
      t.equal(new Set(newcomers).size, 2, 'new users go to the others')
      for (const u of bound) {
        t.equal(await u.visit(app.base), target, 'bound users still stay after the drain finished')
        t.equal(balancerCookies(u.last!).length, 0)
      }
    },
  },

  {
    name: 'two independent app instances agree (cookie and consistent hash), whatever the list order',
    async run (t, h) {
      const ups = await upstreams(t, 4)
      const list = entries(ups)
      const reversed = [...list].reverse()
      const a = await h.start(t, { source: { balancer: balancer(t, { upstreams: list, strategy: stickyCookie({ secret: SECRET_A }) }) } })
      const b = await h.start(t, { source: { balancer: balancer(t, { upstreams: reversed, strategy: stickyCookie({ secret: SECRET_A }) }) } })
      const pinned: string[] = []
      for (let i = 0; i < 8; i++) {
        const u = new Browser()
        pinned.push(await u.visit(a.base))
        t.equal(await u.visit(b.base), pinned[i], `user ${i}: app B honours app A's cookie`)
        t.equal(balancerCookies(u.last!).length, 0, 'without re-issuing it')
      }
      t.ok(new Set(pinned).size >= 3, 'users were spread over the upstreams')

      const ka = await h.start(t, { source: { balancer: balancer(t, { upstreams: list, strategy: consistentHash({ key: { header: 'x-user' } }) }) } })
      const kb = await h.start(t, { source: { balancer: balancer(t, { upstreams: reversed, strategy: consistentHash({ key: { header: 'x-user' } }) }) } })
      const keys = Array.from({ length: 40 }, (_, i) => `user-${i}`)
      const onA = await mapLimit(keys, 8, k => whoServes(ka.base, { 'x-user': k }))
      const onB = await mapLimit(keys, 8, k => whoServes(kb.base, { 'x-user': k }))
      t.same(onB, onA, 'every key picks the same upstream on both instances')
      t.equal(new Set(onA).size, 4, 'keys spread over all upstreams')
    },
  },

  {
    name: 'consistent hashing: only the affected keys move (remove, add, down and back)',
    async run (t, h) {
      const ups = await upstreams(t, 4)
      const fifth = await upstream(t, 'S5')
      // Only a 503 answer may take an upstream down here: a check that is merely slow on a
      // loaded machine (fall: 1) must not, or every key moves and the counts mean nothing.
      const health = { path: '/health', intervalMs: 25, timeoutMs: 10_000, fall: 1, rise: 1 }
      const list = ups.map(u => ({ url: u.url, id: u.name }))
      const ba = balancer(t, { upstreams: list, strategy: consistentHash({ key: { header: 'x-user' } }), health })
      const bb = balancer(t, { upstreams: [...list].reverse(), strategy: consistentHash({ key: { header: 'x-user' } }), health })
      const a = await h.start(t, { source: { balancer: ba } })
      const b = await h.start(t, { source: { balancer: bb } })
      const ag = agent(t)
      const users = Array.from({ length: 200 }, (_, i) => `user-${i}`)
      const map = (base: string): Promise<string[]> => mapLimit(users, 8, u => whoServes(base, { 'x-user': u }, ag))
      const moved = (from: string[], to: string[]): number[] => from.flatMap((n, i) => (n !== to[i] ? [i] : []))

      const m0 = await map(a.base)
      t.same(await map(b.base), m0, 'both instances agree')
      t.same(Object.keys(countBy(m0)).sort(), ['S1', 'S2', 'S3', 'S4'])
      t.same(await map(a.base), m0, 'stable without changes')

      // S3 goes down (active health): only its keys move, to the same successor on both instances.
      byName(ups, 'S3').healthStatus = 503
      await until(() => [ba, bb].every(x => x.list().find(u => u.id === 'S3')!.state === 'down'), 3000, 'S3 down on both')
      const mDown = await map(a.base)
      const downMoved = moved(m0, mDown)
      t.same(downMoved, m0.flatMap((n, i) => (n === 'S3' ? [i] : [])), 'exactly the keys of the down upstream moved')
      t.notOk(mDown.includes('S3'), 'none left on the down upstream')
      t.ok(new Set(downMoved.map(i => mDown[i])).size >= 2, 'its keys are spread over several successors')
      t.same(await map(b.base), mDown, 'the same successors on the second instance')
      byName(ups, 'S3').healthStatus = 200
      await until(() => [ba, bb].every(x => x.list().find(u => u.id === 'S3')!.state === 'up'), 3000, 'S3 up on both')
      t.same(await map(a.base), m0, 'its keys come back when it recovers')

      // Removing S2 moves only S2's keys; adding it back restores everything.
      ba.remove('S2')
      const mRemoved = await map(a.base)
      t.same(moved(m0, mRemoved), m0.flatMap((n, i) => (n === 'S2' ? [i] : [])), 'removing S2 moved exactly its keys')
      ba.add({ url: byName(ups, 'S2').url, id: 'S2' })
      t.same(await map(a.base), m0, 'adding S2 back restores every key')

      // Adding S5 moves keys only onto S5.
      ba.add({ url: fifth.url, id: 'S5' })
      const mAdded = await map(a.base)
      const addMoved = moved(m0, mAdded)
      t.ok(addMoved.length > 0 && addMoved.every(i => mAdded[i] === 'S5'), `only keys onto S5 moved (${addMoved.length} of 200)`)
      t.ok(addMoved.length > 15 && addMoved.length < 70, 'about 1/5 of the keys moved')
    },
  },

  {
    name: 'IP affinity follows the framework trust-proxy setting; IPv4-mapped IPv6 is folded',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const strategies: Array<[string, () => Strategy]> = [['ipHash', () => ipHash()], ['stickyIp', () => stickyIp()]]
      const spoofs = Array.from({ length: 12 }, (_, i) => `203.0.113.${i * 17 + 3}`)
      for (const [label, make] of strategies) {
        const off = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: make() }) }, trustProxy: false })
        const own = await whoServes(off.base)
        const seen = await mapLimit(spoofs, 4, ip => whoServes(off.base, { 'x-forwarded-for': ip }))
        t.same(countBy(seen), { [own]: spoofs.length }, `${label}, trust proxy off: a spoofed X-Forwarded-For is ignored`)

        const on = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: make() }) }, trustProxy: true })
        const first: string[] = []
        for (const ip of spoofs) first.push(await whoServes(on.base, { 'x-forwarded-for': ip }))
        t.ok(new Set(first).size >= 2, `${label}, trust proxy on: client addresses spread (${first.join(',')})`)
        for (const [i, ip] of spoofs.entries()) {
          t.equal(await whoServes(on.base, { 'x-forwarded-for': ip }), first[i], `${label}: ${ip} sticks`)
        }
        const mapped: Array<[string, string]> = []
        for (let i = 0; i < 6; i++) {
          const ip = `192.0.2.${i * 31 + 5}`
          const plain = await whoServes(on.base, { 'x-forwarded-for': ip })
          const v6 = await whoServes(on.base, { 'x-forwarded-for': `::ffff:${ip}` })
          mapped.push([plain, v6])
        }
        t.same(mapped.map(([, v6]) => v6), mapped.map(([plain]) => plain), `${label}: ::ffff:a.b.c.d lands with a.b.c.d`)
        t.ok(new Set(mapped.map(([p]) => p)).size >= 2, `${label}: and those addresses spread too`)
      }
    },
  },

  {
    name: '8 MB upload and 64 MB download arrive byte-identical',
    async run (t, h) {
      const ups = await upstreams(t, 2)
      const app = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) } })
      const upSize = 8 * MB
      const up = await request(`${app.base}/upload`, { method: 'POST', body: patternStream(upSize), headers: { 'content-type': 'application/octet-stream' } })
      t.equal(up.status, 200)
      t.equal(up.json().bytes, upSize, 'every byte of the chunked upload arrived')
      t.equal(up.json().sha256, patternSha(upSize), 'upload byte-identical')
      const sized = await request(`${app.base}/upload`, { method: 'PUT', body: pattern(0, upSize), headers: { 'content-type': 'text/plain' } })
      t.equal(sized.json().bytes, upSize, 'a Content-Length text/plain upload arrives whole (no body parser in the way)')
      t.equal(sized.json().sha256, patternSha(upSize))
      t.equal(sized.json().headers['content-length'], String(upSize))

      const downSize = 64 * MB
      const down = await download(`${app.base}/download?bytes=${downSize}`)
      t.equal(down.status, 200)
      t.equal(Number(down.headers['content-length']), downSize)
      t.equal(down.bytes, downSize, 'every byte of the download arrived')
      t.equal(down.sha256, patternSha(downSize), 'download byte-identical')
    },
  },

  {
    name: 'hop-by-hop headers stripped both ways; X-Forwarded-For/Proto/Host set',
    async run (t, h) {
      const ups = await upstreams(t, 1)
      const app = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups) }) } })
      await checkHopByHop(t, app.base)
      await checkUntrustedForwarded(t, app.base, new URL(app.url).host, ups[0]!.port)

      const trusted = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups) }) }, trustProxy: true })
      const viaProxy = (await request(`${trusted.base}/echo`, {
        headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example' },
      })).json().headers
      t.equal(viaProxy['x-forwarded-for'], '203.0.113.9, 127.0.0.1')
      t.equal(viaProxy['x-forwarded-proto'], 'https', 'trusted proxy: proto as the framework sees it')
      t.equal(viaProxy['x-forwarded-host'], 'shop.example', 'trusted proxy: host as the framework sees it')
    },
  },

  {
    name: "upstream Set-Cookie passes alongside the balancer's cookie",
    async run (t, h) {
      const ups = await upstreams(t, 2)
      const app = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) } })
      const res = await request(`${app.base}/echo?set-cookie=${encodeURIComponent('app=42; Path=/; HttpOnly')}`)
      const lines = setCookies(res)
      t.equal(lines.length, 2, 'two Set-Cookie headers')
      t.ok(lines.includes('app=42; Path=/; HttpOnly'), "the upstream's cookie is intact")
      t.equal(balancerCookies(res).length, 1, "and the balancer's is there too")
      const jar = new CookieJar()
      jar.store(res.headers['set-cookie'])
      const again = await request(`${app.base}/echo?set-cookie=${encodeURIComponent('app=43')}`, { headers: { cookie: jar.header()! } })
      t.same(setCookies(again), ['app=43'], "a pinned user gets only the upstream's cookie")
      t.match(again.json().headers.cookie, /app=42/, 'cookies reach the upstream')
    },
  },

  {
    name: 'all upstreams down: JSON 502 fast; none up: JSON 503 with Retry-After; no address leaks',
    async run (t, h) {
      const deads = [await deadUrl(), await deadUrl()]
      const app = await h.start(t, { source: { upstreams: deads, strategy: stickyCookie({ secret: SECRET_A }), retries: 1 } })
      const started = Date.now()
      const res = await request(`${app.base}/echo`)
      const took = Date.now() - started
      assertJsonError(t, res, 502, 'Bad Gateway')
      t.ok(took < 1000, `answered in ${took} ms`)
      assertNoLeak(t, res.body, deads.map(portOf))
      const post = await request(`${app.base}/orders`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } })
      assertJsonError(t, post, 502, 'Bad Gateway')

      const ups = await upstreams(t, 2)
      for (const u of ups) u.healthStatus = 503
      const b = balancer(t, { upstreams: entries(ups), health: { path: '/health', intervalMs: 20, timeoutMs: 300, fall: 1, rise: 1 } })
      const checked = await h.start(t, { source: { balancer: b } })
      await until(() => b.list().every(u => u.state === 'down'), 3000, 'active health to mark all down')
      const none = await request(`${checked.base}/echo`)
      assertJsonError(t, none, 503, 'Service Unavailable')
      t.ok(Number(none.headers['retry-after']) >= 1, `Retry-After: ${none.headers['retry-after']}`)
      assertNoLeak(t, none.body, ups.map(u => u.port))
      t.equal(ups.flatMap(u => u.seen.filter(s => s.url !== '/health')).length, 0, 'no request reached a down upstream')
    },
  },

  {
    name: 'a hanging upstream gives a JSON 504 after timeoutMs',
    async run (t, h) {
      const ups = await upstreams(t, 1)
      const app = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), timeoutMs: 300 }) } })
      const started = Date.now()
      const res = await request(`${app.base}/hang`)
      const took = Date.now() - started
      assertJsonError(t, res, 504, 'Gateway Timeout')
      t.ok(took >= 250 && took < 3000, `waited for the timeout (${took} ms)`)
      assertNoLeak(t, res.body, [ups[0]!.port])
      t.equal(ups[0]!.seen.filter(s => s.url === '/hang').length, 1, 'not replayed after a timeout')
    },
  },

  {
    name: 'WebSockets land on the pinned upstream with the client headers; unreachable upstreams answer 502',
    async run (t, h) {
      const ups = await upstreams(t, 3)
      const b = balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) })
      const app = await h.start(t, { source: { balancer: b } })
      // Pin first, with two other users in between, so the WebSocket cannot land on it by luck.
      const user = new Browser()
      const pinned = await user.visit(app.base)
      await new Browser().visit(app.base)
      await new Browser().visit(app.base)
      for (let i = 0; i < 4; i++) {
        const { ws, hello, upgradeHeaders } = await openWebSocket(`${wsUrl(app.base)}/chat?room=${i}`, {
          cookie: user.jar.header()!, authorization: 'Bearer ws-token', origin: 'http://app.example',
        }, ['chat.v1'])
        t.equal(hello.name, pinned, `socket ${i} on the pinned upstream`)
        t.equal(hello.url, `/chat?room=${i}`, 'the path below the prefix')
        t.match(hello.headers.cookie, /affinity=/, 'cookie forwarded')
        t.equal(hello.headers.authorization, 'Bearer ws-token', 'Authorization forwarded')
        t.equal(hello.headers.origin, 'http://app.example', 'Origin forwarded')
        t.equal(hello.headers['sec-websocket-protocol'], 'chat.v1', 'subprotocol forwarded')
        t.equal(hello.headers['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For set')
        t.equal(upgradeHeaders['sec-websocket-protocol'], 'chat.v1', 'subprotocol accepted')
        t.notOk(upgradeHeaders['set-cookie'], 'no new cookie for a pinned user')
        ws.send('ping')
        t.equal(await nextMessage(ws), `${pinned}:ping`, 'messages flow both ways')
        ws.close()
        await until(() => b.list().every(u => u.websockets === 0), 2000, 'socket count to drop')
      }
      const first = await openWebSocket(`${wsUrl(app.base)}/chat`)
      t.match(String(first.upgradeHeaders['set-cookie']), /^affinity=/, 'a first visit over WebSocket gets the cookie on the 101')
      first.ws.close()

      const deads = [await deadUrl(), await deadUrl()]
      const down = await h.start(t, { source: { upstreams: deads, strategy: stickyCookie({ secret: SECRET_A }) } })
      const err = await openWebSocket(`${wsUrl(down.base)}/chat`).then(() => undefined, (e: { statusCode?: number }) => e)
      t.equal(err?.statusCode, 502, 'HTTP 502 instead of an accepted handshake')
    },
  },

  {
    name: 'two prefixes are independent proxies',
    async run (t, h) {
      const setA = await upstreams(t, 2, 'A')
      const setB = await upstreams(t, 2, 'B')
      const ba = balancer(t, { upstreams: entries(setA), strategy: stickyCookie({ secret: SECRET_A, name: 'aff_a' }) })
      const bb = balancer(t, { upstreams: entries(setB), strategy: stickyCookie({ secret: SECRET_B, name: 'aff_b' }) })
      const app = await h.startMounts(t, [{ prefix: '/a', source: { balancer: ba } }, { prefix: '/b', source: { balancer: bb } }])
      const [baseA, baseB] = app.bases as [string, string]
      const user = new Browser()
      const onA = await user.visit(baseA)
      t.match(onA, /^A/)
      t.equal(balancerCookies(user.last!, 'aff_a').length, 1, '/a sets its own cookie')
      t.equal(balancerCookies(user.last!, 'aff_b').length, 0)
      const onB = await user.visit(baseB)
      t.match(onB, /^B/)
      t.equal(balancerCookies(user.last!, 'aff_b').length, 1, '/b sets its own cookie')
      for (let i = 0; i < 6; i++) {
        t.equal(await user.visit(baseA), onA)
        t.equal(await user.visit(baseB), onB)
      }
      for (let i = 0; i < 6; i++) {
        t.match(await whoServes(baseA), /^A/, '/a never reaches set B')
        t.match(await whoServes(baseB), /^B/, '/b never reaches set A')
      }
      const deep = await request(`${baseB}/deep/path?q=1&r=%2F`)
      t.equal(deep.json().url, '/deep/path?q=1&r=%2F', 'the path below the prefix reaches the upstream')
      const rootA = await request(`${baseA}/`)
      t.equal(rootA.json().url, '/', 'the prefix root is /')

      const wa = await openWebSocket(`${wsUrl(baseA)}/chat`, { cookie: user.jar.header()! })
      const wb = await openWebSocket(`${wsUrl(baseB)}/chat`, { cookie: user.jar.header()! })
      t.equal(wa.hello.name, onA, 'a WebSocket under /a lands on the pinned A upstream')
      t.equal(wb.hello.name, onB, 'a WebSocket under /b lands on the pinned B upstream')
      t.equal(wa.hello.url, '/chat')
      t.equal(wb.hello.url, '/chat')
      wa.ws.close()
      wb.ws.close()
      const upgrades = [...setA, ...setB].flatMap(u => u.seen.filter(s => s.headers.upgrade !== undefined))
      t.equal(upgrades.length, 2, 'each upgrade reached exactly one upstream, once')
      t.ok(setA.every(u => u.seen.every(s => s.headers['x-forwarded-host'] !== undefined)), 'set A saw only proxied requests')
    },
  },

  {
    name: 'an unmounted path 404s without reaching any upstream (HTTP and WebSocket)',
    async run (t, h) {
      const ups = await upstreams(t, 2)
      const app = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups) }) } })
      for (const path of ['/elsewhere', '/elsewhere/echo', '/apix/echo', '/']) {
        const res = await request(`${app.url}${path}`)
        t.equal(res.status, 404, `GET ${path}: 404`)
        const err = await openWebSocket(`${wsUrl(app.url)}${path}`).then(() => undefined, (e: { statusCode?: number }) => e)
        t.equal(err?.statusCode, 404, `WebSocket ${path}: 404`)
      }
      t.same(ups.map(u => u.seen.length), [0, 0], 'no upstream saw anything')
      t.equal((await request(`${app.base}/echo`)).status, 200, 'the mounted prefix still proxies')
    },
  },

  {
    name: 'metrics: a scrape mirrors stats() (2xx, 5xx, a refused upstream, a drain); the next scrape adds exactly the new traffic',
    async run (t, h) {
      const ups = await upstreams(t, 2)
      const refusing = { url: await deadUrl(), id: 'backend-refusing-id' }
      // passive: false keeps the refusing upstream in the rotation: each visit there fails over.
      const b = balancer(t, { name: 'shop', upstreams: [...entries(ups), refusing], strategy: roundRobin(), passive: false })
      const app = await h.start(t, { source: { balancer: b }, metrics: {} })
      const scrape = async (): Promise<Scrape> => {
        const res = await request(`${app.base}/metrics`)
        t.equal(res.status, 200, 'GET <prefix>/metrics answers')
        t.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8', 'the exposition format')
        return new Scrape(res.body.toString('utf8'))
      }
      const refused = (s: Scrape): number => s.sum('affinity_upstream_requests_total', { upstream: refusing.id, outcome: 'connect_error' })
      for (let i = 0; i < 6; i++) t.equal((await request(`${app.base}/echo`)).status, 200)
      t.equal((await request(`${app.base}/status?code=503`)).status, 503)

      const first = await scrape()
      t.same(first.of('shop'), expectedFromStats(b.stats(), 'shop'), 'every counter, gauge and histogram count equals stats()')
      t.ok(refused(first) >= 2, `refused attempts counted on their upstream (${refused(first)})`)
      t.equal(first.sum('affinity_upstream_requests_total', { outcome: '2xx' }), 6)
      t.equal(first.sum('affinity_upstream_requests_total', { outcome: '5xx' }), 1)
      t.equal(first.sum('affinity_picks_total'), 7 + refused(first), 'a pick per request and per failover: scrapes are not picks')
      t.equal(first.sum('affinity_upstream_request_duration_seconds_count'), 7 + refused(first), 'the histogram counts every attempt')
      t.same([first.types.get('affinity_upstream_requests_total'), first.types.get('affinity_upstream_in_flight'), first.types.get('affinity_upstream_request_duration_seconds')], ['counter', 'gauge', 'histogram'])
      t.notOk(first.samples.some(s => Object.values(s.labels).some(v => v.includes('127.0.0.1'))), 'no upstream URL in any label')
      t.same(ups.map(u => u.seen.filter(r => r.url.includes('metrics')).length), [0, 0], 'scrapes never reach an upstream')

      // Gauges right after a drain, with a request in flight.
      const drained = idOf(ups[1]!)
      const slow = request(`${app.base}/slow?ms=600`)
      await until(() => b.list().some(u => u.inFlight === 1), 3000, 'a request in flight')
      void b.drain(drained)
      const during = await scrape()
      t.same(during.of('shop'), expectedFromStats(b.stats(), 'shop'), 'gauges equal stats() mid-drain')
      t.equal(during.get('affinity_upstream_state', { balancer: 'shop', upstream: drained, state: 'draining' }), 1, 'state="draining" is 1')
      t.equal(during.get('affinity_upstream_state', { balancer: 'shop', upstream: drained, state: 'up' }), 0, 'state="up" is 0')
      t.equal(during.sum('affinity_upstream_in_flight'), 1, 'the request in flight')
      t.equal((await slow).status, 200)

      for (let i = 0; i < 5; i++) t.equal((await request(`${app.base}/echo`)).status, 200)
      const second = await scrape()
      t.same(second.of('shop'), expectedFromStats(b.stats(), 'shop'), 'the second scrape equals stats() too')
      const delta = (name: string, labels: Record<string, string> = {}): number => second.sum(name, labels) - first.sum(name, labels)
      const refusedSince = refused(second) - refused(first)
      t.equal(delta('affinity_upstream_requests_total', { outcome: '2xx' }), 6, 'exactly the six answers since (the slow one and five)')
      t.equal(delta('affinity_upstream_requests_total', { outcome: '5xx' }), 0)
      t.equal(delta('affinity_picks_total'), 6 + refusedSince, 'picks: one per request and per failover since')
      t.equal(delta('affinity_upstream_request_duration_seconds_count'), 6 + refusedSince, 'histogram: one per attempt since')
      t.equal(second.sum('affinity_upstream_in_flight'), 0)
    },
  },

  {
    name: "metrics: your own registry gets them next to your app's; two balancers share it by name; closing the app takes them out",
    async run (t, h) {
      const setA = await upstreams(t, 2, 'A')
      const setB = await upstreams(t, 2, 'B')
      const registry = new Registry()
      new Counter({ name: 'shop_orders_total', help: 'Orders placed.', registers: [registry] }).inc(3)
      const cart = balancer(t, { name: 'cart', upstreams: entries(setA), strategy: stickyCookie({ secret: SECRET_A }) })
      const search = balancer(t, { name: 'search', upstreams: entries(setB) })
      const app = await h.startMounts(t, [
        { prefix: '/a', source: { balancer: cart }, metrics: { registry } },
        { prefix: '/b', source: { balancer: search }, metrics: { registry } },
      ])
      const [baseA, baseB] = app.bases as [string, string]
      const users = Array.from({ length: 4 }, () => new Browser())
      for (const u of users) for (let i = 0; i < 2; i++) await u.visit(baseA)
      for (let i = 0; i < 3; i++) await whoServes(baseB)

      const viaRoute = new Scrape((await request(`${baseB}/metrics`)).body.toString('utf8'))
      const direct = new Scrape(await registry.metrics())
      t.equal(viaRoute.get('shop_orders_total'), 3, "the route serves the whole registry: the app's own metrics too")
      t.same(direct.of('cart'), expectedFromStats(cart.stats(), 'cart'), 'balancer="cart" series equal its stats()')
      t.same(direct.of('search'), expectedFromStats(search.stats(), 'search'), 'balancer="search" series equal its stats()')
      t.same(viaRoute.of('cart'), direct.of('cart'), 'the route and the registry agree')
      t.equal(direct.sum('affinity_upstream_bound_users', { balancer: 'cart' }), 4, 'four users bound')
      t.same(direct.series('affinity_upstream_bound_users', { balancer: 'search' }), [], 'no bound-users series for a stateless strategy')
      t.equal(direct.get('affinity_picks_total', { balancer: 'cart', reason: 'sticky' }), 4)
      t.equal(direct.sum('affinity_upstream_requests_total', { balancer: 'search', outcome: '2xx' }), 3)

      await app.close()
      t.equal(registry.getSingleMetric('affinity_upstream_requests_total'), undefined, "closing the app takes Affinity's metrics out of your registry")
      t.ok(registry.getSingleMetric('shop_orders_total'), 'and leaves yours')
    },
  },
]

export function runScenarios (t: Test, harness: AdapterHarness): void {
  for (const s of [...SCENARIOS, ...STATUS_PAGE_SCENARIOS]) t.test(`${harness.name}: ${s.name}`, t => s.run(t, harness))
}
