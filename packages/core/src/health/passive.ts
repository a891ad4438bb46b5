import { finiteNumber, knownKeys, milliseconds, optionsObject, wholeNumber } from '../options.js'
import type { PassiveOptions } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'

export interface PassiveConfig {
  failures: number
  cooldownMs: number
  maxCooldownMs: number
  maxEjectedPercent: number
}

export function passiveConfig (opts: PassiveOptions | false | undefined): PassiveConfig | undefined {
  if (opts === false) return undefined
  const o = optionsObject('passive', opts)
  knownKeys('passive', o, ['failures', 'cooldownMs', 'maxCooldownMs', 'maxEjectedPercent'])
  const cooldownMs = milliseconds('passive.cooldownMs', o.cooldownMs, 10_000, { positive: true })
  return {
    failures: wholeNumber('passive.failures', o.failures, 3, 1),
    cooldownMs,
    maxCooldownMs: finiteNumber('passive.maxCooldownMs', o.maxCooldownMs, Math.max(300_000, cooldownMs), { min: cooldownMs }, 'expected milliseconds ≥ cooldownMs'),
    maxEjectedPercent: finiteNumber('passive.maxEjectedPercent', o.maxEjectedPercent, 50, { min: 0, max: 100 }, 'expected a percentage from 0 to 100'),
  }
}

/** What the balancer tells passive health about the whole pool. */
export interface PoolView {
  /** Upstreams in the pool (not removed). */
  readonly total: number
  /** Upstreams currently ejected by passive health. */
  readonly ejected: number
  /** Upstreams up (taking new users), `u` excluded. */
  upOtherThan (u: Upstream): number
}

/**
 * Passive health from real traffic, as Envoy's outlier detection does it
 * (outlier_detection.proto: consecutive_5xx, base_ejection_time,
 * max_ejection_time, max_ejection_percent):
 * - `failures` consecutive failed requests (connection errors, timeouts, 5xx) eject
 *   an upstream;
 * - the n-th ejection in a row lasts n × `cooldownMs`, capped at `maxCooldownMs`;
 *   each `cooldownMs` an upstream then stays in without ejection takes one off n;
 * - after an ejection the upstream is tried again, and one failure ejects it again;
 * - at most `maxEjectedPercent` of the upstreams are ejected at once, and never the
 *   last one still up (as nginx never marks a single server down): a failing
 *   upstream beyond that stays in, and its connection failures still fail over.
 */
export class PassiveHealth {
  readonly #config: PassiveConfig
  readonly #changed: (u: Upstream, reason: string) => void
  readonly #pool: PoolView
  readonly #timers = new Map<Upstream, NodeJS.Timeout>()
  /** When each upstream last came back from an ejection (for the decay of `ejections`). */
  readonly #returned = new Map<Upstream, number>()

  constructor (config: PassiveConfig, changed: (u: Upstream, reason: string) => void, pool: PoolView) {
    this.#config = config
    this.#changed = changed
    this.#pool = pool
  }

  success (u: Upstream): void {
    u.consecutiveFailures = 0
    this.#decay(u)
  }

  failure (u: Upstream): void {
    u.consecutiveFailures++
    if (u.ejected || u.removed || u.consecutiveFailures < this.#config.failures || !this.#mayEject(u)) return
    this.#decay(u)
    u.ejected = true
    u.ejections++
    u.ejectionsTotal++
    const ms = Math.min(this.#config.cooldownMs * u.ejections, this.#config.maxCooldownMs)
    const timer = setTimeout(() => {
      this.#timers.delete(u)
      u.ejected = false
      // Tried again: one more failure and it is out again, for longer.
      u.consecutiveFailures = this.#config.failures - 1
      this.#returned.set(u, Date.now())
      this.#changed(u, `ejection #${u.ejections} over after ${ms} ms`)
    }, ms)
    timer.unref()
    this.#timers.set(u, timer)
    this.#changed(u, `${u.consecutiveFailures} consecutive failures, ejected for ${ms} ms`)
  }

  /**
   * The upstream is known up again (an active check passed): end its ejection now.
   * It is back from this moment, so its ejections decay from here as after a timed
   * ejection (deleting the mark instead would stop the decay for good).
   */
  forget (u: Upstream): void {
    const t = this.#timers.get(u)
    if (t !== undefined) clearTimeout(t)
    this.#timers.delete(u)
    if (u.ejections > 0 && !u.removed) this.#returned.set(u, Date.now())
    else this.#returned.delete(u)
  }

  close (): void {
    for (const t of this.#timers.values()) clearTimeout(t)
    this.#timers.clear()
  }

  #mayEject (u: Upstream): boolean {
    const { total, ejected } = this.#pool
    if (this.#pool.upOtherThan(u) === 0) return false
    // At least one upstream may always be ejected, whatever the percentage (Envoy).
    return ejected === 0 || (ejected + 1) * 100 <= total * this.#config.maxEjectedPercent
  }

  /** One ejection forgiven per cooldown period spent in without being ejected. */
  #decay (u: Upstream): void {
    if (u.ejections === 0) return // the common case: no Map lookup per success
    const since = this.#returned.get(u)
    if (since === undefined) return
    const periods = Math.floor((Date.now() - since) / this.#config.cooldownMs)
    if (periods <= 0) return
    u.ejections = Math.max(0, u.ejections - periods)
    if (u.ejections === 0) this.#returned.delete(u)
    else this.#returned.set(u, since + periods * this.#config.cooldownMs)
  }
}
