import type { Pool } from 'undici'
import { AffinityError, invalidOption } from '../errors.js'
import { activeConfig, type ActiveConfig } from '../health/active.js'
import { passiveConfig, type PassiveConfig } from '../health/passive.js'
import type { HealthOptions, PassiveOptions, UpstreamInput } from '../model/types.js'
import { normalizeUpstream, type NormalizedUpstream } from '../model/upstream.js'
import { finiteNumber, knownKeys, milliseconds, optionsObject, wholeNumber } from '../options.js'
import { overloadConfig, type OverloadConfig, type OverloadOptions } from './overload-config.js'
import { roundRobin } from '../strategies/round-robin.js'
import type { Strategy } from '../strategies/strategy.js'

export interface BalancerOptions extends OverloadOptions {
  upstreams: readonly UpstreamInput[]
  /** Names this balancer in the decision trace and metrics labels (several in one process). */
  name?: string
  /** How to choose an upstream per request (default: roundRobin()). */
  strategy?: Strategy
  /** Active HTTP health checks; off when absent. */
  health?: HealthOptions
  /** Ejection after consecutive failures; on by default, `false` turns it off. */
  passive?: PassiveOptions | false
  /** Other upstreams tried when a connection fails (default 1). */
  retries?: number
  /** No response head by then: 504 (default 60 s). */
  timeoutMs?: number
  /**
   * Longest silence between two response body chunks, like nginx's
   * proxy_read_timeout (default: timeoutMs; 0: none). Past it the stream is cut,
   * visibly to the client, and counted as `idle_timeout`, not against the upstream.
   */
  idleTimeoutMs?: number
  /** undici Pool options for each upstream (connections, keepAliveTimeout, connect: TLS options…). */
  pool?: Pool.Options
  /**
   * Panic mode, as Envoy's healthy_panic_threshold: when fewer than this percentage
   * of upstreams (draining ones aside) are up, health is ignored and all of them
   * take traffic. 0 (the default) turns it off, so that none up means 503.
   */
  panicThreshold?: number
  /**
   * drain()'s default idle window: a drain completes only once no user bound to the
   * upstream has come back for this long (besides nothing in flight and no
   * WebSocket open). 0 (the default): in flight and WebSockets only.
   */
  drainIdleMs?: number
}

/** The options a balancer takes: anything else is refused (AFFINITY_ERR_UNKNOWN_OPTION). */
export const BALANCER_OPTIONS = [
  'upstreams', 'name', 'strategy', 'health', 'passive', 'retries', 'timeoutMs', 'idleTimeoutMs', 'pool', 'panicThreshold', 'drainIdleMs',
  'maxInFlight', 'maxWebSockets', 'queue', 'retryBudget',
] as const satisfies ReadonlyArray<keyof BalancerOptions>

/** BalancerOptions, checked and with their defaults: what the balancer's parts are built from. */
export interface BalancerConfig {
  name: string | undefined
  strategy: Strategy
  upstreams: NormalizedUpstream[]
  retries: number
  timeoutMs: number
  idleTimeoutMs: number
  pool: Pool.Options
  panicThreshold: number
  drainIdleMs: number
  active: ActiveConfig | undefined
  passive: PassiveConfig | undefined
  /** Seconds for Retry-After on a 503: how soon an upstream may be back. */
  retryAfter: number
  overload: OverloadConfig
}

/** Checks every option before anything is built (no pool opened, no timer started). */
export function balancerConfig (opts: BalancerOptions): BalancerConfig {
  if (opts === null || typeof opts !== 'object') throw new AffinityError('AFFINITY_ERR_NO_UPSTREAMS')
  knownKeys('createBalancer', opts, BALANCER_OPTIONS)
  if (!Array.isArray(opts.upstreams) || opts.upstreams.length === 0) throw new AffinityError('AFFINITY_ERR_NO_UPSTREAMS')
  if (opts.name !== undefined && typeof opts.name !== 'string') throw invalidOption('name', 'expected a string')
  const timeoutMs = milliseconds('timeoutMs', opts.timeoutMs, 60_000, { positive: true })
  const active = activeConfig(opts.health)
  const passive = passiveConfig(opts.passive)
  const upstreams = opts.upstreams.map(normalizeUpstream)
  uniqueIds(upstreams)
  return {
    name: opts.name,
    strategy: strategyOf(opts.strategy),
    upstreams,
    retries: wholeNumber('retries', opts.retries, 1, 0),
    timeoutMs,
    idleTimeoutMs: milliseconds('idleTimeoutMs', opts.idleTimeoutMs, timeoutMs, { zero: 'no limit' }),
    pool: { connect: { timeout: Math.min(10_000, timeoutMs) }, ...optionsObject('pool', opts.pool) },
    panicThreshold: finiteNumber('panicThreshold', opts.panicThreshold, 0, { min: 0, max: 100 }, 'expected a percentage from 0 (off) to 100'),
    drainIdleMs: drainIdleMs('drainIdleMs', opts.drainIdleMs),
    active,
    passive,
    retryAfter: Math.max(1, Math.ceil(Math.min(passive?.cooldownMs ?? Infinity, active?.intervalMs ?? Infinity, 10_000) / 1000)),
    overload: overloadConfig(opts),
  }
}

/** An idle window for drains (drainIdleMs, drain()'s idleMs). */
export function drainIdleMs (name: string, ms: unknown): number {
  return milliseconds(name, ms, 0, { zero: 'do not wait for bound users' })
}

export function uniqueIds (upstreams: readonly NormalizedUpstream[], taken?: ReadonlySet<string>): void {
  const seen = new Set<string>()
  for (const n of upstreams) {
    if (seen.has(n.id) || taken?.has(n.id) === true) throw new AffinityError('AFFINITY_ERR_DUPLICATE_ID', n.id)
    seen.add(n.id)
  }
}

function strategyOf (strategy: Strategy | undefined): Strategy {
  const s = strategy ?? roundRobin()
  if (s === null || typeof s !== 'object' || typeof s.pick !== 'function' || typeof s.update !== 'function') {
    throw invalidOption('strategy', 'expected a strategy such as roundRobin() or stickyCookie({ secret })')
  }
  return s
}
