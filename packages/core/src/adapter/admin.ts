import { STATUS_CODES } from 'node:http'
import type { Balancer } from '../balancer/balancer.js'
import { AffinityError } from '../errors.js'
import type { UpstreamInfo } from '../model/types.js'
import type { RouteAnswer } from './routes.js'

/**
 * One request to the admin routes, as an adapter sees it. The adapter routes
 * everything below its admin route here (every method), so the answers (404, 405,
 * 400…) are the same JSON on every framework.
 */
export interface AdminRequest {
  method: string
  /** The path below the admin route, percent-decoded: '' or '/' (the list), 'drain/<id>'… */
  path: string
  /** The query string, without '?' ('' when none). */
  query: string
  /**
   * The request body: its stream (read only by `weight`, at most ADMIN_BODY_LIMIT
   * bytes), or `{ parsed }` when a body parser mounted before the route already read it.
   */
  body?: NodeJS.ReadableStream | { parsed: unknown }
  /** Aborted when the client goes away: a `?wait=1` drain stops waiting (the drain goes on). */
  signal?: AbortSignal
}

/** The largest body the admin routes read: `{ "weight": n }` needs a few bytes. */
export const ADMIN_BODY_LIMIT = 1024

/** How long `POST …/drain/:id?wait=1` waits by default before answering 503 (as examples/drain-prestop). */
export const DRAIN_WAIT_MS = 10 * 60_000

const HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' } as const

const ROUTES = 'GET /, POST /drain/:id[?wait=1&idleMs=&timeoutMs=], POST /undrain/:id, POST /weight/:id with {"weight":n}'

/** A JSON answer. */
function json (status: number, value: unknown, headers: Record<string, string> = {}): RouteAnswer {
  return { status, headers: { ...HEADERS, ...headers }, body: JSON.stringify(value) }
}

/** An error answer in the shape of every answer the balancer gives itself: `{ statusCode, error, message }`. */
function fail (status: number, message: string, headers: Record<string, string> = {}): RouteAnswer {
  return json(status, { statusCode: status, error: STATUS_CODES[status], message }, headers)
}

class BadRequest extends Error {
  constructor (message: string, readonly status = 400) { super(message) }
}

/**
 * The admin routes, below whatever path the adapter mounts them at:
 *   GET  /                 { upstreams: [{ id, url, weight, state, inFlight, websockets, requests, failures, boundUsers }] }
 *   POST /drain/:id        202 at once; with ?wait=1, 200 { drained: true } once drained
 *                          or 503 { drained: false } after timeoutMs (examples/drain-prestop)
 *   POST /undrain/:id      200
 *   POST /weight/:id       body { "weight": n }: 200
 * An unknown id answers 404; a known path with another method 405 (with Allow);
 * anything else 404. Operations go through the balancer's methods, so a control
 * attached to the balancer (@affinity/redis) applies them on every instance.
 */
export async function adminAnswer (balancer: Balancer, req: AdminRequest): Promise<RouteAnswer> {
  const path = req.path.startsWith('/') ? req.path.slice(1) : req.path
  const slash = path.indexOf('/')
  const op = slash === -1 ? path : path.slice(0, slash)
  try {
    if (path === '') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, `${req.method} is not allowed here: ${ROUTES}`, { allow: 'GET, HEAD' })
      noQuery(req.query)
      return json(200, { upstreams: upstreamList(balancer) })
    }
    if (slash === -1 || (op !== 'drain' && op !== 'undrain' && op !== 'weight')) return fail(404, `no admin route /${path}: ${ROUTES}`)
    if (req.method !== 'POST') return fail(405, `${req.method} is not allowed on /${op}/:id: use POST`, { allow: 'POST' })
    const id = path.slice(slash + 1)
    const upstream = balancer.list().find(u => u.id === id)
    if (upstream === undefined) return fail(404, `no upstream with id ${JSON.stringify(id)}`)
    if (op === 'drain') return await drain(balancer, id, req)
    if (op === 'undrain') {
      noQuery(req.query)
      balancer.undrain(id)
      return json(200, { id, upstream: info(balancer, id) })
    }
    noQuery(req.query)
    const weight = weightOf(await readJson(req.body))
    balancer.setWeight(id, weight)
    return json(200, { id, upstream: info(balancer, id) })
  } catch (err) {
    if (err instanceof BadRequest) return fail(err.status, err.message)
    // Checks of the balancer's own (a weight ≤ 0, idleMs < 0) are the client's mistake here.
    if (err instanceof AffinityError && err.code !== 'AFFINITY_ERR_CLOSED') {
      return err.code === 'AFFINITY_ERR_UNKNOWN_UPSTREAM' ? fail(404, err.message) : fail(400, err.message)
    }
    if (err instanceof AffinityError) return fail(503, err.message)
    throw err
  }
}

/** Every upstream with its state, counters and bound users (sticky strategies). */
function upstreamList (balancer: Balancer): Array<UpstreamInfo & { boundUsers: number | undefined }> {
  return balancer.stats().upstreams.map(u => ({
    id: u.id, url: u.url, weight: u.weight, state: u.state, inFlight: u.inFlight, queued: u.queued, websockets: u.websockets,
    requests: u.requests, failures: u.failures, ejections: u.ejections, boundUsers: u.boundUsers,
  }))
}

function info (balancer: Balancer, id: string): UpstreamInfo | undefined {
  return balancer.list().find(u => u.id === id)
}

/**
 * Drains `id`. Without `wait`, answers 202 at once: the drain is under way (and, with
 * a control attached, reaches the other instances). `?wait=1` keeps the request open
 * until this instance has drained the upstream (nothing in flight, no WebSocket, no
 * bound user back for the idle window): what a Kubernetes preStop hook waits on.
 */
async function drain (balancer: Balancer, id: string, req: AdminRequest): Promise<RouteAnswer> {
  const q = query(req.query, ['wait', 'idleMs', 'timeoutMs'])
  const wait = flag('wait', q.get('wait'))
  const idleMs = number('idleMs', q.get('idleMs'), 0)
  const timeoutMs = number('timeoutMs', q.get('timeoutMs'), 1) ?? DRAIN_WAIT_MS
  if (!wait && q.has('timeoutMs')) throw new BadRequest('timeoutMs is how long ?wait=1 waits: it needs wait=1')
  const started = performance.now()
  const done = balancer.drain(id, idleMs === undefined ? {} : { idleMs })
  if (!wait) {
    done.catch(() => {})
    return json(202, { id, drained: false, upstream: info(balancer, id) })
  }
  const outcome = await waitFor(done, started + timeoutMs, req.signal)
  const waitedMs = Math.round(performance.now() - started)
  if (outcome === 'drained') return json(200, { id, drained: true, waitedMs })
  return json(503, { id, drained: false, waitedMs })
}

/**
 * 'drained', or 'timeout' once performance.now() reaches `deadline` (or once
 * `signal` aborts). A timer counts from libuv's cached loop time, which can be a
 * millisecond or more older than the clock read the deadline came from: one that
 * fires early is re-armed for what is left, so the 503 never comes before
 * timeoutMs (149 ms for 150 was seen under `taskset -c 0 npm test`).
 */
function waitFor (done: Promise<void>, deadline: number, signal: AbortSignal | undefined): Promise<'drained' | 'timeout'> {
  return new Promise(resolve => {
    const end = (outcome: 'drained' | 'timeout'): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', abort)
      resolve(outcome)
    }
    const abort = (): void => end('timeout')
    const expire = (): void => {
      const left = deadline - performance.now()
      if (left > 0) timer = setTimeout(expire, Math.ceil(left))
      else abort()
    }
    let timer = setTimeout(expire, Math.ceil(deadline - performance.now()))
    signal?.addEventListener('abort', abort)
    if (signal?.aborted === true) abort()
    done.then(() => end('drained'), abort)
  })
}

function noQuery (raw: string): void {
  query(raw, [])
}

/** The query parameters, refusing any not in `known` (an unknown parameter is a typo, never ignored). */
function query (raw: string, known: readonly string[]): URLSearchParams {
  const q = new URLSearchParams(raw)
  for (const key of q.keys()) {
    if (!known.includes(key)) throw new BadRequest(`unknown query parameter ${JSON.stringify(key)}${known.length === 0 ? ': this route takes none' : `: the parameters are ${known.join(', ')}`}`)
  }
  return q
}

/** `?wait`, `?wait=1`, `?wait=true` → true; absent, `0`, `false` → false. */
function flag (name: string, v: string | null): boolean {
  if (v === null || v === '0' || v === 'false') return false
  if (v === '' || v === '1' || v === 'true') return true
  throw new BadRequest(`${name}: expected 1 or 0, got ${JSON.stringify(v)}`)
}

/** A number of milliseconds ≥ `min`, or undefined when absent. */
function number (name: string, v: string | null, min: number): number | undefined {
  if (v === null) return undefined
  const n = Number(v)
  if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new BadRequest(`${name}: expected milliseconds ≥ ${min}, got ${JSON.stringify(v)}`)
  return n
}

function weightOf (body: unknown): number {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('expected a JSON body {"weight": n}')
  const extra = Object.keys(body).find(k => k !== 'weight')
  if (extra !== undefined) throw new BadRequest(`unknown field ${JSON.stringify(extra)}: the body is {"weight": n}`)
  const weight = (body as { weight?: unknown }).weight
  if (typeof weight !== 'number') throw new BadRequest('expected a JSON body {"weight": n} with a number n > 0')
  return weight
}

/** The body as JSON: read from its stream (at most ADMIN_BODY_LIMIT bytes) unless a body parser already did. */
async function readJson (body: AdminRequest['body']): Promise<unknown> {
  if (body === undefined) throw new BadRequest('expected a JSON body {"weight": n}')
  if ('parsed' in body) {
    const v = body.parsed
    if (typeof v !== 'string' && !Buffer.isBuffer(v)) return v
    return parse(Buffer.isBuffer(v) ? v.toString('utf8') : v)
  }
  return parse((await readLimited(body)).toString('utf8'))
}

/**
 * Reads a stream whole, refusing more than ADMIN_BODY_LIMIT bytes. Past the limit the
 * rest is read and dropped rather than the stream destroyed: destroying a request
 * destroys its socket, and the 413 could not be sent.
 */
function readLimited (stream: NodeJS.ReadableStream): Promise<Buffer> {
  // Already read by someone else, with nothing left for us: no 'end' will come.
  if ((stream as { readableEnded?: boolean }).readableEnded === true) return Promise.resolve(Buffer.alloc(0))
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = (): void => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onError)
    }
    const onData = (chunk: Buffer | string): void => {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      size += b.length
      if (size <= ADMIN_BODY_LIMIT) {
        chunks.push(b)
        return
      }
      done()
      stream.on('error', () => {})
      stream.resume()
      reject(new BadRequest(`the body is larger than ${ADMIN_BODY_LIMIT} bytes: expected {"weight": n}`, 413))
    }
    const onEnd = (): void => { done(); resolve(Buffer.concat(chunks)) }
    const onError = (err: Error): void => { done(); reject(err) }
    stream.on('data', onData)
    stream.on('end', onEnd)
    stream.on('error', onError)
  })
}

function parse (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new BadRequest(text.trim() === '' ? 'expected a JSON body {"weight": n}' : 'the body is not JSON: expected {"weight": n}')
  }
}
