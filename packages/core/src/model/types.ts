import type { IncomingHttpHeaders } from 'node:http'
import type { StoreStats } from '../stick/store.js'

/**
 * The framework-neutral view of a request that a strategy sees. Adapters fill it
 * from Fastify's request or Express's req; `ip` is the framework's own client
 * address, so its trust-proxy setting decides whether X-Forwarded-For counts.
 */
export interface RouteRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  ip: string | undefined
  cookies: Record<string, string | undefined>
  /** 'https' when the request arrived over TLS as the framework sees it (trust proxy included). */
  protocol?: string
  /** Host as the framework sees it (trust proxy included); defaults to the Host header. */
  host?: string
}

export interface UpstreamOptions {
  /** http://, https://, or ws:// and wss:// for the same server over http and https. */
  url: string
  /** Stable identity used for hashing and cookies; defaults to the URL as written. */
  id?: string
  weight?: number
  /**
   * Requests in flight here at most (HAProxy `maxconn`, nginx `max_conns`); more wait
   * in this upstream's queue (`queue`). Default: the balancer's `maxInFlight` (none).
   */
  maxInFlight?: number
  /** Open WebSockets here at most. Default: the balancer's `maxWebSockets` (none). */
  maxWebSockets?: number
}

export type UpstreamInput = string | UpstreamOptions

export type UpstreamState = 'up' | 'down' | 'draining'

export interface UpstreamInfo {
  id: string
  url: string
  weight: number
  state: UpstreamState
  inFlight: number
  /** Requests waiting in this upstream's queue for a free slot (maxInFlight). */
  queued: number
  websockets: number
  requests: number
  failures: number
  /** Passive ejections in a row (decays while the upstream stays healthy). */
  ejections: number
}

export interface HealthOptions {
  path: string
  intervalMs?: number
  timeoutMs?: number
  /** Consecutive passes that bring a down upstream back. */
  rise?: number
  /** Consecutive failures that take an upstream down. */
  fall?: number
}

export interface PassiveOptions {
  /** Consecutive failures (connect errors, timeouts, 5xx) that eject an upstream. */
  failures?: number
  /** How long a first ejection lasts; the n-th in a row lasts n × cooldownMs. */
  cooldownMs?: number
  /** The longest an ejection lasts (default 300 s, Envoy's max_ejection_time). */
  maxCooldownMs?: number
  /** At most this share of upstreams ejected at once (default 50; one may always be). */
  maxEjectedPercent?: number
}

/**
 * How one attempt at an upstream ended: the response's status class, a WebSocket
 * `upgrade`, or the failure. Charged to the upstream: `connect_error` (never
 * reached it), `timeout` (no response head within timeoutMs), `reset` (the
 * connection failed after the request reached it, before a complete answer).
 * Never charged: `aborted` (the client left first), `idle_timeout` (the body went
 * silent for idleTimeoutMs: the stream is cut), `invalid_request` (no valid
 * upstream request could be built from what the client sent), `unrelayable` (an
 * answer the proxy cannot pass on: an unsolicited 100 Continue, a head Node will
 * not write). Overload answers, never charged either (forward/admission.ts):
 * `queue_full` (at maxInFlight and its queue full, or no queue), `queue_timeout`
 * (waited longer than queue.timeoutMs), `websockets_full` (an upgrade for a user
 * bound to an upstream at maxWebSockets). A request whose client leaves while it
 * waits in a queue ends as `aborted`.
 */
export type OutcomeKind = '2xx' | '3xx' | '4xx' | '5xx' | 'upgrade' | 'connect_error' | 'timeout' | 'reset' | 'aborted' | 'idle_timeout' | 'invalid_request' | 'unrelayable' | 'queue_full' | 'queue_timeout' | 'websockets_full'

/** One active health check, as kept in `UpstreamStats.health.recent`. */
export interface HealthCheckRecord {
  /** Epoch milliseconds when the check ended. */
  at: number
  ok: boolean
  /** 'answered 200', 'failed (ECONNREFUSED)'… */
  detail: string
  ms: number
}

export interface UpstreamStats extends UpstreamInfo {
  /** The weight it takes new users by: `weight`, or less while slow start ramps it. */
  effectiveWeight: number
  /** Attempts by how they ended (a retried request counts once per upstream tried). */
  outcomes: Record<OutcomeKind, number>
  /** Users bound here and seen within the strategy's window (sticky strategies only). */
  boundUsers: number | undefined
  health: {
    /** Active checks run, passed and failed since start (0 without `health`). */
    checks: number
    passed: number
    failed: number
    /** The last checks, oldest first. */
    recent: HealthCheckRecord[]
  }
  /** Passive ejections since start, and whether one is in force now. */
  ejectionsTotal: number
  ejected: boolean
  /** Its limits: undefined when there is none. */
  maxInFlight: number | undefined
  maxWebSockets: number | undefined
  /**
   * Requests that waited in its queue and then got a slot (or were moved away with
   * their upstream), and their total wait: mean = totalMs / count.
   */
  queueWait: { count: number, totalMs: number }
}

/** A state change of one upstream, as kept in `BalancerStats.changes`. */
export interface StateChange {
  at: number
  upstream: string
  /** 'up' | 'down' | 'draining', or 'added' / 'removed'. */
  from: UpstreamState | 'absent'
  to: UpstreamState | 'removed'
  reason: string
}

export interface BalancerStats {
  /** Epoch milliseconds when these figures were read. */
  at: number
  strategy: string
  panic: boolean
  upstreams: UpstreamStats[]
  /** Picks by the strategy's reason (sticky hit, new assignment, failover…), retries included. */
  picks: Record<string, number>
  /** The last state changes, oldest first. */
  changes: StateChange[]
  /**
   * stickyIp's stick store: a shared store's health (over @affinity/redis) and a
   * bounded in-memory table's `evicted` (bindings dropped before their TTL because
   * the table was full), `entries` and `maxEntries`; undefined for other strategies.
   */
  store: StoreStats | undefined
  /** stickyCookie's verified-token cache: `evicted` = tokens dropped because it was full; undefined for other strategies. */
  tokenCache: TokenCacheStats | undefined
  /**
   * Failover retries made, and refused by the retry budget (`retryBudget`: the
   * client got the error instead).
   */
  retries: { made: number, refused: number }
  /** With a membership source (`upstreams: dnsDiscovery(…)`): how it is followed; undefined for a fixed list. */
  discovery: DiscoveryStats | undefined
}

/** How a membership source is followed (`stats().discovery`). */
export interface DiscoveryStats {
  /** Members in the source's last list (members it left out and that still drain are not counted). */
  members: number
  /** Epoch milliseconds when the last list was applied (a source sends a list when it changes); null before the first. */
  lastUpdate: number | null
  /** The last failed resolution or refused list; null when none yet. */
  lastError: { at: number, code: string | null, message: string } | null
  /** Failed resolutions and refused lists since start. */
  errors: number
}

/** The verified-token cache of stickyCookie (`cacheSize`). */
export interface TokenCacheStats {
  entries: number
  max: number
  evicted: number
}
