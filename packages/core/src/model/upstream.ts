import { Dispatcher } from 'undici'
import { AffinityError } from '../errors.js'
import { knownKeys, wholeNumber } from '../options.js'
import { WaitQueue } from './wait-queue.js'
import type { HealthCheckRecord, OutcomeKind, UpstreamInfo, UpstreamInput, UpstreamOptions, UpstreamState } from './types.js'

/** Health checks kept per upstream for stats() and the status page. */
export const RECENT_CHECKS = 20

/**
 * The transport of a would-be upstream (Balancer.preview and the hash warm-up
 * build some to ask a strategy a what-if): it opens nothing, and dispatching
 * through it throws.
 */
export const NO_TRANSPORT: Dispatcher = new Dispatcher()

/**
 * One upstream server: its identity, its connection pool, live counters and health.
 * Counters are plain fields mutated on the request path; everything strategies
 * precompute from (state, weight, membership) lives in `Members` instead.
 */
export class Upstream {
  readonly id: string
  readonly url: string
  readonly origin: string
  /** Path prefix of the upstream URL, prepended to every forwarded path ('' for '/'). */
  readonly basePath: string
  /** The configured weight (setWeight changes it; a new snapshot follows). */
  weight: number
  readonly secure: boolean
  /** Its connection pool (undici's Pool): what the forwarders and active checks dispatch through. */
  readonly pool: Dispatcher

  inFlight = 0
  websockets = 0
  requests = 0
  failures = 0
  /** Attempts by outcome: a fixed-shape object, one increment per attempt. */
  readonly outcomes: Record<OutcomeKind, number> = {
    '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, upgrade: 0, connect_error: 0, timeout: 0, reset: 0, aborted: 0, idle_timeout: 0, invalid_request: 0, unrelayable: 0, queue_full: 0, queue_timeout: 0, websockets_full: 0,
  }

  /** Limits (Infinity: none), enforced by forward/admission.ts. */
  maxInFlight = Infinity
  maxWebSockets = Infinity
  /** Requests waiting for a slot here, oldest first. */
  readonly queue = new WaitQueue()
  /** WebSocket handshakes under way: they count against maxWebSockets until they end. */
  upgrading = 0
  /** A new request would wait here (at maxInFlight, or others already waiting): stateless picks set it aside. */
  full = false
  /** A new WebSocket would be refused here (open ones and handshakes at maxWebSockets). */
  socketsFull = false
  /** Requests that waited in the queue, and their total wait in ms. */
  queueWaits = 0
  queueWaitMs = 0

  /** Active checks: totals and the last RECENT_CHECKS, oldest first. */
  checksPassed = 0
  checksFailed = 0
  readonly recentChecks: HealthCheckRecord[] = []
  /** Passive ejections since start (`ejections` decays; this does not). */
  ejectionsTotal = 0

  /** Active checks: false once `fall` checks failed, true again after `rise` passed. */
  healthy = true
  /** Passive health: consecutive failed requests, and the end of the current ejection. */
  consecutiveFailures = 0
  ejected = false
  ejections = 0
  /** Takes no new users: an operator's drain() or its source no longer listing it (the two below). */
  draining = false
  /** Who drains it: an operator (drain() until undrain()), and/or its source, which left it out (source-sync.ts). */
  drainedByOperator = false
  leaving = false
  removed = false
  /**
   * While draining: when (performance.now()) a bound user last came back, or the
   * drain began. A drain with an idle window completes once this is old enough.
   */
  boundSeenAt = 0

  constructor (url: string, id: string, weight: number, pool: Dispatcher) {
    const parsed = new URL(url)
    this.url = url
    this.id = id
    this.weight = weight
    this.origin = parsed.origin
    this.secure = parsed.protocol === 'https:'
    this.basePath = parsed.pathname === '/' ? '' : parsed.pathname.replace(/\/+$/, '')
    this.pool = pool
  }

  get state (): UpstreamState {
    if (!this.healthy || this.ejected) return 'down'
    return this.draining ? 'draining' : 'up'
  }

  /** Load for least-connections and bounded loads: requests plus open WebSockets. */
  get load (): number {
    return this.inFlight + this.websockets
  }

  recordCheck (check: HealthCheckRecord): void {
    if (check.ok) this.checksPassed++
    else this.checksFailed++
    if (this.recentChecks.push(check) > RECENT_CHECKS) this.recentChecks.shift()
  }

  info (): UpstreamInfo {
    return {
      id: this.id,
      url: this.url,
      weight: this.weight,
      state: this.state,
      inFlight: this.inFlight,
      queued: this.queue.length,
      websockets: this.websockets,
      requests: this.requests,
      failures: this.failures,
      ejections: this.ejections,
    }
  }
}

/**
 * `url` is what the pool connects to (http: or https:); `id` defaults to the URL as
 * written; limits left undefined take the balancer's.
 */
export interface NormalizedUpstream { url: string, id: string, weight: number, maxInFlight?: number | undefined, maxWebSockets?: number | undefined }

/**
 * ws: and wss: name the same server as http: and https: (RFC 6455 §3: a WebSocket
 * opens with an HTTP/1.1 upgrade on the same host and port), so a WebSocket backend
 * can be listed the way its users write it, as @fastify/http-proxy accepts it.
 */
const HTTP_SCHEME: Readonly<Record<string, string>> = { 'http:': 'http', 'https:': 'https', 'ws:': 'http', 'wss:': 'https' }

/** Validates one `upstreams` entry; throws an AffinityError that says what to fix. */
export function normalizeUpstream (input: UpstreamInput): NormalizedUpstream {
  const raw = typeof input === 'string' ? { url: input } : input
  if (raw === null || typeof raw !== 'object' || typeof raw.url !== 'string') {
    throw new AffinityError('AFFINITY_ERR_INVALID_URL', JSON.stringify(input))
  }
  if (typeof input !== 'string') knownKeys('upstream', raw, ['url', 'id', 'weight', 'maxInFlight', 'maxWebSockets'])
  let parsed: URL
  try {
    parsed = new URL(raw.url)
  } catch {
    throw new AffinityError('AFFINITY_ERR_INVALID_URL', JSON.stringify(raw.url))
  }
  const scheme = HTTP_SCHEME[parsed.protocol]
  if (scheme === undefined || parsed.username || parsed.password || parsed.search || parsed.hash) {
    throw new AffinityError('AFFINITY_ERR_INVALID_URL', JSON.stringify(raw.url))
  }
  const id = raw.id ?? raw.url
  if (typeof id !== 'string' || id.length === 0) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'id', 'must be a non-empty string')
  const weight = checkWeight(id, raw.weight ?? 1)
  // ws(s): only the scheme changes, the rest stays as written (no trailing slash added).
  const url = `${scheme}:` === parsed.protocol ? raw.url : `${scheme}:${raw.url.trim().slice(parsed.protocol.length)}`
  const limits = typeof input === 'string' ? {} : upstreamLimits(raw)
  return { url, id, weight, ...limits }
}

/** An upstream entry's own `maxInFlight` / `maxWebSockets` (whole numbers ≥ 1), when given. */
function upstreamLimits (raw: UpstreamOptions): Pick<NormalizedUpstream, 'maxInFlight' | 'maxWebSockets'> {
  const out: Pick<NormalizedUpstream, 'maxInFlight' | 'maxWebSockets'> = {}
  if (raw.maxInFlight !== undefined) out.maxInFlight = wholeNumber('maxInFlight', raw.maxInFlight, 0, 1)
  if (raw.maxWebSockets !== undefined) out.maxWebSockets = wholeNumber('maxWebSockets', raw.maxWebSockets, 0, 1)
  return out
}

/** A weight: a finite number > 0. */
export function checkWeight (id: string, weight: unknown): number {
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
    throw new AffinityError('AFFINITY_ERR_INVALID_WEIGHT', id, String(weight))
  }
  return weight
}
