import type { Pool } from 'undici'
import { AffinityError, invalidOption } from '../errors.js'
import { activeConfig, type ActiveConfig } from '../health/active.js'
import { passiveConfig, type PassiveConfig } from '../health/passive.js'
import type { UpstreamSource } from '../model/source.js'
import type { HealthOptions, PassiveOptions, UpstreamInput } from '../model/types.js'
import { normalizeUpstream, type NormalizedUpstream } from '../model/upstream.js'
import { finiteNumber, knownKeys, milliseconds, optionsObject, wholeNumber } from '../options.js'
import { overloadConfig, type OverloadConfig, type OverloadOptions } from './overload-config.js'
import { roundRobin } from '../strategies/round-robin.js'
import type { Strategy } from '../strategies/strategy.js'

export interface BalancerOptions extends OverloadOptions {
  /**
   * A fixed list, or a membership source (`dnsDiscovery(…)`, or one you write) whose
   * every update is the whole current list: the balancer applies the difference
   * (source-sync.ts) and `ready()` resolves once the first list is in.
   */
  upstreams: readonly UpstreamInput[] | UpstreamSource
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
  /**
   * An added upstream, or one back up from down, ramps its effective weight from 10%
   * to 100% over this window (slow-start.ts); not at the balancer's start. 0 (the
   * default): off.
   */
  slowStartMs?: number
  /**
   * With a membership source: a member that leaves the list is drained first and
   * removed once idle (`drainIdleMs`, which defaults to this here) and at the latest
   * after this long (default 30 s, Kubernetes' default terminationGracePeriodSeconds:
   * how long a terminating pod keeps serving after it leaves the endpoints). 0:
   * removed at once, as nginx, HAProxy and Envoy do.
   */
  removeGraceMs?: number
}

/** The options a balancer takes: anything else is refused (AFFINITY_ERR_UNKNOWN_OPTION). */
export const BALANCER_OPTIONS = [
  'upstreams', 'name', 'strategy', 'health', 'passive', 'retries', 'timeoutMs', 'idleTimeoutMs', 'pool', 'panicThreshold', 'drainIdleMs',
  'slowStartMs', 'removeGraceMs', 'maxInFlight', 'maxWebSockets', 'queue', 'retryBudget',
] as const satisfies ReadonlyArray<keyof BalancerOptions>

/** BalancerOptions, checked and with their defaults: what the balancer's parts are built from. */
export interface BalancerConfig {
  name: string | undefined
  strategy: Strategy
  /** The fixed list; empty with a source. */
  upstreams: NormalizedUpstream[]
  source: SourceConfig | undefined
  retries: number
  timeoutMs: number
  idleTimeoutMs: number
  pool: Pool.Options
  panicThreshold: number
  drainIdleMs: number
  slowStartMs: number
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
  const source = sourceConfig(opts)
  if (source === undefined && (!Array.isArray(opts.upstreams) || opts.upstreams.length === 0)) throw new AffinityError('AFFINITY_ERR_NO_UPSTREAMS')
  if (opts.name !== undefined && typeof opts.name !== 'string') throw invalidOption('name', 'expected a string')
  const timeoutMs = milliseconds('timeoutMs', opts.timeoutMs, 60_000, { positive: true })
  const active = activeConfig(opts.health)
  const passive = passiveConfig(opts.passive)
  const upstreams = source === undefined ? (opts.upstreams as readonly UpstreamInput[]).map(normalizeUpstream) : []
  uniqueIds(upstreams)
  return {
    name: opts.name,
    strategy: strategyOf(opts.strategy),
    upstreams,
    source,
    retries: wholeNumber('retries', opts.retries, 1, 0),
    timeoutMs,
    idleTimeoutMs: milliseconds('idleTimeoutMs', opts.idleTimeoutMs, timeoutMs, { zero: 'no limit' }),
    pool: { connect: { timeout: Math.min(10_000, timeoutMs) }, ...optionsObject('pool', opts.pool) },
    panicThreshold: finiteNumber('panicThreshold', opts.panicThreshold, 0, { min: 0, max: 100 }, 'expected a percentage from 0 (off) to 100'),
    drainIdleMs: drainIdleMs('drainIdleMs', opts.drainIdleMs),
    slowStartMs: timerMs('slowStartMs', opts.slowStartMs, 0, 'off'),
    active,
    passive,
    retryAfter: Math.max(1, Math.ceil(Math.min(passive?.cooldownMs ?? Infinity, active?.intervalMs ?? Infinity, 10_000) / 1000)),
    overload: overloadConfig(opts),
  }
}

/** A membership source, checked: where the list comes from, and how leaving members are let go. */
export interface SourceConfig {
  source: UpstreamSource
  /** The longest a member that left its source stays (draining) before it is removed. */
  removeGraceMs: number
  /** The idle window of those drains: `drainIdleMs` when given, else removeGraceMs (SPEC). */
  drainIdleMs: number
}

/** `upstreams` as a source (an object with `subscribe`), or undefined for a list; `removeGraceMs` only with a source. */
function sourceConfig (opts: BalancerOptions): SourceConfig | undefined {
  const u = opts.upstreams as unknown
  if (Array.isArray(u) || u === undefined) {
    if (opts.removeGraceMs !== undefined) {
      throw invalidOption('removeGraceMs', 'applies to a membership source (`upstreams: dnsDiscovery(…)`); a fixed list changes only through add() and remove()')
    }
    return undefined
  }
  if (u === null || typeof u !== 'object' || typeof (u as UpstreamSource).subscribe !== 'function') {
    throw invalidOption('upstreams', 'expected a list of upstreams or a membership source such as dnsDiscovery({ name, port })')
  }
  const removeGraceMs = timerMs('removeGraceMs', opts.removeGraceMs, 30_000, 'removed at once, without a drain')
  return { source: u as UpstreamSource, removeGraceMs, drainIdleMs: opts.drainIdleMs === undefined ? removeGraceMs : drainIdleMs('drainIdleMs', opts.drainIdleMs) }
}

/** setTimeout fires at once past 2^31 - 1 ms (≈ 24.8 days), which a window must not turn into. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Milliseconds for a timer: 0 to MAX_TIMER_MS; `zero` says what 0 means. */
function timerMs (name: string, value: unknown, fallback: number, zero: string): number {
  return finiteNumber(name, value, fallback, { min: 0, max: MAX_TIMER_MS }, `expected milliseconds from 0 (${zero}) to ${MAX_TIMER_MS}`)
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
