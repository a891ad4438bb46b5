/**
 * The blame rule as a property (docs/operations.md "Health"): for
 * any request a client can send — any method, header names including
 * pseudo-headers and odd bytes, bodies of any size and framing, pipelined or on
 * concurrent HTTP/2 streams, cut off at any byte, over HTTP/1.0, 1.1 or 2 — no
 * upstream's state, failures or ejections change unless the upstream itself
 * misbehaved, and no client, by any traffic, moves another user.
 *
 * The upstreams (test/helpers/upstreams.ts) are all well behaved: they echo,
 * answer 413 before reading an upload and close (with `Connection: close`, or a
 * hard destroy: RFC 9112 §9.6 allows both), stream server-sent events, send
 * trailers, or serve downloads. Passive health is at its most sensitive
 * (`failures: 1`: one charged attempt ejects), the strategy is stickyCookie, and
 * bystander users are pinned before the property runs. After every case: every
 * upstream up, never charged (failures, ejections, connect_error/reset/timeout/5xx
 * all 0), nothing in flight once the front has seen the client's connection
 * close, no 5xx answer, and every bystander still lands on its upstream.
 * Run per adapter by blame.express.test.ts and blame.fastify.test.ts (which
 * also runs the HTTP/2 property on a Fastify `http2: true` app).
 */
import fc from 'fast-check'
import type { Test } from 'tap'
import { stickyCookie, type Balancer } from '@affinity/core'
import type { AdapterHarness } from './harness.js'
import { SECRET_A, balancer, entries, upstreams } from './scenarios.js'
import { h1Bytes, h1Case, h2Case, targetOf, type CookieChoice, type H1Case, type H2Case } from './blame-cases.js'
import { settle } from '../helpers/books.js'
import { connect, h2request, send, type H2Answer } from '../helpers/h2-client.js'
import { request } from '../helpers/http.js'
import { expect, holds } from '../helpers/property.js'
import { exchange, FrontConnections } from '../helpers/raw-http.js'

/** A fixed seed, so CI runs the same cases every time (FC_SEED=… tries others). */
const SEED = Number(process.env.FC_SEED ?? 0x5eed_b1a3)
/** Scales numRuns (BLAME_RUNS=5 for a longer soak). */
const SCALE = Number(process.env.BLAME_RUNS ?? 1)
const runs = (n: number): number => Math.max(1, Math.round(n * SCALE))

const COOKIE = 'affinity'

interface Bystander { cookie: string, upstream: string }

interface Fixture {
  origin: string
  balancer: Balancer
  conns: FrontConnections
  bystanders: Bystander[]
  /** What the cases got, for the comment that shows what the property exercised. */
  tally: Map<string, number>
  /** One request with a bystander's cookie: the upstream that answered. */
  visit (cookie: string): Promise<string | undefined>
}

async function fixture (t: Test, h: AdapterHarness, protocol: 'h1' | 'h2'): Promise<Fixture> {
  const ups = await upstreams(t, 3)
  const b = balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }), passive: { failures: 1 }, timeoutMs: 10_000 })
  const app = await h.start(t, { source: { balancer: b } })
  const visit = async (cookie: string | undefined): Promise<{ upstream?: string, setCookie?: string }> => {
    const headers = cookie === undefined ? {} : { cookie: `${COOKIE}=${cookie}` }
    if (protocol === 'h1') {
      const res = await request(`${app.url}/api/echo?t=bystander`, { headers })
      const set = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find(c => c.startsWith(`${COOKIE}=`))
      return { upstream: res.headers['x-served-by'] as string | undefined, setCookie: set }
    }
    const res = await h2request(app.url, { method: 'GET', path: '/api/echo?t=bystander', headers })
    const set = ([] as string[]).concat(res.headers?.['set-cookie'] ?? []).find(c => c.startsWith(`${COOKIE}=`))
    return { upstream: res.headers?.['x-served-by'] as string | undefined, setCookie: set }
  }
  // Two users pinned on each upstream before anything else happens.
  const bystanders: Bystander[] = []
  for (let i = 0; i < 60 && ups.some(u => bystanders.filter(x => x.upstream === u.name).length < 2); i++) {
    const r = await visit(undefined)
    if (r.upstream === undefined || r.setCookie === undefined) throw new Error('a new user got no cookie')
    if (bystanders.filter(x => x.upstream === r.upstream).length < 2) bystanders.push({ cookie: r.setCookie.split(';')[0]!.slice(COOKIE.length + 1), upstream: r.upstream })
  }
  t.equal(bystanders.length, 6, `bystanders pinned: ${bystanders.map(x => x.upstream).join(', ')}`)
  return { origin: app.url, balancer: b, conns: new FrontConnections(app.server), bystanders, tally: new Map(), visit: async c => (await visit(c)).upstream }
}

function count (fx: Fixture, what: string): void {
  fx.tally.set(what, (fx.tally.get(what) ?? 0) + 1)
}

function tallyOf (fx: Fixture): string {
  return [...fx.tally].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k}: ${n}`).join(', ')
}

let counter = 0
const token = (): string => `bx${++counter}x`

function cookieValue (fx: Fixture, c: CookieChoice): string | undefined {
  if (c.kind === 'none') return undefined
  if (c.kind === 'garbage') return `${COOKIE}=${c.value}`
  return `${COOKIE}=${fx.bystanders[c.index % fx.bystanders.length]!.cookie}`
}

/** Charged outcomes: what only an upstream's own misbehaviour may cause. */
const CHARGED = ['connect_error', 'reset', 'timeout', '5xx'] as const

/** The invariants, once the front has seen the client's connection close. */
async function checkBooks (fx: Fixture, what: unknown): Promise<void> {
  await settle(fx.balancer, fx.conns)
  for (const u of fx.balancer.stats().upstreams) {
    const charged = CHARGED.filter(k => u.outcomes[k] !== 0)
    expect(u.state === 'up' && u.failures === 0 && u.ejections === 0 && u.ejectionsTotal === 0 && !u.ejected && charged.length === 0,
      `upstream ${u.id} was charged for a client's traffic`, { upstream: { state: u.state, failures: u.failures, ejections: u.ejections, ejectionsTotal: u.ejectionsTotal, outcomes: u.outcomes }, case: what })
  }
  for (const x of fx.bystanders) {
    const got = await fx.visit(x.cookie)
    expect(got === x.upstream, `a bystander pinned on ${x.upstream} was moved to ${got}`, what)
  }
}

/** A short description of a case for the counterexample (bodies as sizes). */
function describe (c: H1Case | H2Case): unknown {
  return JSON.parse(JSON.stringify(c, (_k, v: unknown) => (typeof v === 'string' && v.length > 60 ? `${v.slice(0, 60)}…` : v)))
}

async function runH1 (fx: Fixture, c: H1Case): Promise<void> {
  const port = Number(new URL(fx.origin).port)
  const payload = Buffer.concat(c.requests.map((r, i) => h1Bytes(c, r, token(), i === c.requests.length - 1, cookieValue(fx, r.cookie))))
  const ex = c.abort === undefined
    // The last request asks to close: the exchange ends when the server closes.
    ? await exchange(port, payload, { timeoutMs: 10_000 })
    : await exchange(port, payload, { abortAfter: Math.floor(payload.length * c.abort.at), abortDelayMs: c.abort.delayMs })
  // A HEAD answer's Content-Length has no body behind it: answers after one are not parsed.
  const head = c.requests.findIndex(r => r.method === 'HEAD')
  const statuses = ex.answers.slice(0, head === -1 ? undefined : head + 1).map(a => a.status)
  expect(statuses.every(s => s < 500), `a ${statuses.find(s => s >= 500)} answer from well-behaved upstreams`, { statuses, case: describe(c) })
  if (c.abort === undefined) expect(ex.closed, 'a complete exchange was never closed by the server', { statuses, case: describe(c) })
  count(fx, c.abort === undefined ? 'complete exchanges' : 'cut exchanges')
  for (const s of statuses) count(fx, String(s))
  await checkBooks(fx, describe(c))
}

async function runH2 (fx: Fixture, c: H2Case): Promise<void> {
  const session = connect(fx.origin)
  let answers: H2Answer[]
  try {
    answers = await Promise.all(c.requests.map(r => {
      const bytes = r.body.size
      const abort = r.abort === undefined ? undefined : r.abort.kind === 'rst-after-head' ? r.abort : { kind: r.abort.kind, bytes: Math.floor(bytes * r.abort.at) }
      const cookie = cookieValue(fx, r.cookie)
      // (No prototype: '__proto__' is a header name like any other.)
      const headers = Object.create(null) as Record<string, string[]>
      for (const [n, v] of r.headers) (headers[n.toLowerCase()] ??= []).push(v)
      if (cookie !== undefined) headers.cookie = [cookie]
      return send(session, { method: r.method, path: targetOf(r, token()), headers, body: Buffer.alloc(bytes, 'b'), chunk: r.body.chunk, ...(abort === undefined ? {} : { abort }) })
    }))
  } finally {
    session.close()
  }
  const statuses = answers.map(a => a.status).filter((s): s is number => s !== undefined)
  for (const a of answers) count(fx, a.refused !== undefined ? `refused by node:http2 (${a.refused})` : a.status !== undefined ? String(a.status) : `no answer (${a.error ?? 'closed'})`)
  expect(statuses.every(s => s < 500), `a ${statuses.find(s => s >= 500)} answer from well-behaved upstreams`, { answers: answers.map(a => ({ status: a.status, refused: a.refused, error: a.error })), case: describe(c) })
  await checkBooks(fx, describe(c))
}

export function runBlame (t: Test, h: AdapterHarness): void {
  t.comment(`fast-check seed ${SEED} (FC_SEED=${SEED} replays it)`)
  t.test(`${h.name}: no client traffic over HTTP/1.x charges an upstream or moves a user`, async t => {
    const fx = await fixture(t, h, 'h1')
    await holds(t, 'any HTTP/1.0 or 1.1 request, pipelined, cut at any byte: no upstream charged, no bystander moved', fc.asyncProperty(h1Case, c => runH1(fx, c)), { numRuns: runs(150), seed: SEED, endOnFailure: true })
    await checkBooks(fx, 'at the end')
    t.pass('at the end: every upstream up and uncharged, every bystander where it was')
    t.comment(`exercised: ${tallyOf(fx)}`)
  })
}

/** The same property over HTTP/2 (Fastify `http2: true`, h2c): node:http2 streams, reset or dropped at any point. */
export function runBlameH2 (t: Test, h: AdapterHarness): void {
  t.comment(`fast-check seed ${SEED} (FC_SEED=${SEED} replays it)`)
  t.test(`${h.name} (http2): no client traffic over HTTP/2 charges an upstream or moves a user`, async t => {
    const fx = await fixture(t, h, 'h2')
    await holds(t, 'any HTTP/2 streams, reset after the head or any body byte, or the connection dropped: no upstream charged, no bystander moved', fc.asyncProperty(h2Case, c => runH2(fx, c)), { numRuns: runs(100), seed: SEED, endOnFailure: true })
    await checkBooks(fx, 'at the end')
    t.pass('at the end: every upstream up and uncharged, every bystander where it was')
    t.comment(`exercised: ${tallyOf(fx)}`)
  })
}
