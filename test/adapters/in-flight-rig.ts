/**
 * The rig for the event-ordering tests (in-flight.ts, early-answers.ts): one real
 * upstream with a handler of the test's own, a balancer over it with passive health
 * at its most sensitive, an app of either adapter, and the levers that force an
 * ordering with events: a stick store and a connector that wait on a condition, a
 * raw HTTP/1.1 client, the front's and the upstream's connections as their servers
 * see them.
 */
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Http2Server } from 'node:http2'
import net, { type AddressInfo, type Socket } from 'node:net'
import { once } from 'node:events'
import type { Test } from 'tap'
import { roundRobin, stickyIp, type Balancer, type StickStore } from '@affinity/core'
import type { AdapterHarness } from './harness.js'
import { balancer } from './scenarios.js'
import { settle } from '../helpers/books.js'
import { FrontConnections, parseAnswers } from '../helpers/raw-http.js'

/** A promise and the function that resolves it. */
export function signal<T = void> (): { promise: Promise<T>, fire: (v: T) => void } {
  let fire!: (v: T) => void
  const promise = new Promise<T>(resolve => { fire = resolve })
  return { promise, fire }
}

export interface UpstreamRecord { url: string, method: string, bytes: number, complete: boolean }

export interface Rig {
  b: Balancer
  port: number
  origin: string
  conns: FrontConnections
  /** Requests the upstream received (their bodies as far as they came). */
  seen: UpstreamRecord[]
  /** The upstream's own connections (closed once the balancer has let go). */
  upstreamConns: FrontConnections
  /** The app's server (node:http, or node:http2 for Fastify `http2: true`). */
  server: Server | Http2Server
}

export interface RigOptions {
  /** Answers the upstream's requests (recorded before it runs). */
  handle: (req: IncomingMessage, res: ServerResponse) => void
  store?: StickStore
  /** An undici connector (real sockets) that may hold the connection back. */
  connect?: (opts: { hostname: string, port: string }, cb: (err: Error | null, socket: Socket | null) => void) => void
}

export async function rig (t: Test, h: AdapterHarness, opts: RigOptions): Promise<Rig> {
  const seen: UpstreamRecord[] = []
  const up = http.createServer((req, res) => {
    const r: UpstreamRecord = { url: req.url ?? '', method: req.method ?? '', bytes: 0, complete: false }
    seen.push(r)
    req.on('data', (c: Buffer) => { r.bytes += c.length })
    req.on('end', () => { r.complete = true })
    opts.handle(req, res)
  })
  const upstreamConns = new FrontConnections(up)
  up.listen(0, '127.0.0.1')
  await once(up, 'listening')
  t.teardown(() => new Promise<void>(resolve => { up.closeAllConnections(); up.close(() => resolve()) }))
  const url = `http://127.0.0.1:${(up.address() as AddressInfo).port}`
  const b = balancer(t, {
    upstreams: [{ url, id: 'U' }],
    strategy: opts.store === undefined ? roundRobin() : stickyIp({ store: opts.store }),
    passive: { failures: 1 },
    timeoutMs: 10_000,
    ...(opts.connect === undefined ? {} : { pool: { connect: opts.connect as never } }),
  })
  const app = await h.start(t, { source: { balancer: b } })
  return { b, port: Number(new URL(app.url).port), origin: app.url, conns: new FrontConnections(app.server), seen, upstreamConns, server: app.server }
}

/** `promise`, or a clear failure if it has not settled after `ms` (a bound on a hang, never a wait). */
export function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms) })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/** A real connector that connects only once `gate` has resolved. */
export function heldConnector (gate: () => Promise<unknown>): RigOptions['connect'] {
  return (opts, cb) => {
    void gate().then(() => {
      const socket = net.connect(Number(opts.port), opts.hostname)
      socket.once('connect', () => cb(null, socket))
      socket.once('error', (err) => cb(err, null))
    })
  }
}

/** A stick store whose reads wait on `gate` (from the `from`-th read on); `asked` fires at each gated read. */
export function gatedStore (gate: () => Promise<unknown>, from = 1): StickStore & { asked: Promise<void> } {
  const asked = signal()
  let reads = 0
  return {
    asked: asked.promise,
    async get () {
      if (++reads < from) return undefined
      asked.fire()
      await gate()
      return undefined
    },
    set () {},
    delete () {},
  }
}

/** A raw HTTP/1.1 client connection: writes what it is given, keeps what comes back. */
export class RawClient {
  readonly socket: Socket
  readonly chunks: Buffer[] = []
  readonly closed: Promise<void>

  constructor (port: number) {
    this.socket = net.connect(port, '127.0.0.1')
    this.socket.on('error', () => {})
    this.socket.on('data', (c: Buffer) => this.chunks.push(c))
    this.closed = new Promise(resolve => this.socket.once('close', () => resolve()))
  }

  /** Writes `data`, resolving once it is handed to the kernel (or the socket is gone). */
  write (data: string | Buffer): Promise<void> {
    return new Promise(resolve => {
      if (this.socket.destroyed) { resolve(); return }
      this.socket.write(data, () => resolve())
    })
  }

  answers (): ReturnType<typeof parseAnswers> {
    return parseAnswers(Buffer.concat(this.chunks), this.socket.destroyed)
  }

  /** Resolves once `cond` holds on what has arrived (checked at each chunk). */
  until (cond: (c: RawClient) => boolean): Promise<void> {
    if (cond(this)) return Promise.resolve()
    return new Promise(resolve => {
      const check = (): void => {
        if (!cond(this)) return
        this.socket.off('data', check)
        resolve()
      }
      this.socket.on('data', check)
    })
  }
}

/** The books once the front has seen the client go: nothing in flight, the upstream up and uncharged. */
export async function checkBooks (t: Test, r: Rig, expected: { aborted?: number, requests?: number }): Promise<void> {
  await settle(r.b, r.conns)
  const u = r.b.stats().upstreams[0]!
  t.equal(u.inFlight, 0, 'nothing in flight')
  t.ok(u.state === 'up' && u.failures === 0 && u.ejectionsTotal === 0, `the upstream is up and uncharged (state ${u.state}, failures ${u.failures})`)
  t.same([u.outcomes.connect_error, u.outcomes.reset, u.outcomes.timeout, u.outcomes['5xx']], [0, 0, 0, 0], 'no connect_error, reset, timeout or 5xx')
  if (expected.aborted !== undefined) t.equal(u.outcomes.aborted, expected.aborted, `${expected.aborted} attempt(s) ended as aborted`)
  if (expected.requests !== undefined) t.equal(u.requests, expected.requests, `${expected.requests} attempt(s) made`)
}
