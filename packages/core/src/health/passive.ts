import { invalidOption } from '../errors.js'
import type { PassiveOptions } from '../types.js'
import type { Upstream } from '../upstream.js'

export interface PassiveConfig { failures: number, cooldownMs: number }

export function passiveConfig (opts: PassiveOptions | false | undefined): PassiveConfig | undefined {
  if (opts === false) return undefined
  const failures = opts?.failures ?? 3
  const cooldownMs = opts?.cooldownMs ?? 10_000
  if (!Number.isInteger(failures) || failures < 1) throw invalidOption('passive.failures', 'expected a whole number ≥ 1')
  if (!Number.isFinite(cooldownMs) || cooldownMs <= 0) throw invalidOption('passive.cooldownMs', 'expected milliseconds > 0')
  return { failures, cooldownMs }
}

/**
 * Passive health from real traffic (nginx max_fails/fail_timeout, Envoy
 * consecutive_5xx outlier detection): `failures` consecutive failed requests
 * (connection errors, timeouts, 5xx) eject an upstream for `cooldownMs`; after the
 * cooldown it is tried again, and a single further failure ejects it again.
 * As in nginx, the last upstream still up is never ejected by traffic alone:
 * answering 503 for every request would be worse than trying it.
 */
export class PassiveHealth {
  readonly #config: PassiveConfig
  readonly #changed: (u: Upstream, reason: string) => void
  readonly #canEject: (u: Upstream) => boolean
  readonly #timers = new Map<Upstream, NodeJS.Timeout>()

  constructor (config: PassiveConfig, changed: (u: Upstream, reason: string) => void, canEject: (u: Upstream) => boolean) {
    this.#config = config
    this.#changed = changed
    this.#canEject = canEject
  }

  success (u: Upstream): void {
    u.consecutiveFailures = 0
  }

  failure (u: Upstream): void {
    u.consecutiveFailures++
    if (u.ejected || u.removed || u.consecutiveFailures < this.#config.failures || !this.#canEject(u)) return
    u.ejected = true
    u.ejections++
    const timer = setTimeout(() => {
      this.#timers.delete(u)
      u.ejected = false
      // Half-open: one more failure and it is out again.
      u.consecutiveFailures = this.#config.failures - 1
      this.#changed(u, 'cooldown over')
    }, this.#config.cooldownMs)
    timer.unref()
    this.#timers.set(u, timer)
    this.#changed(u, `${u.consecutiveFailures} consecutive failures`)
  }

  /** When the upstream is known up again (an active check passed), end its ejection early. */
  forget (u: Upstream): void {
    const t = this.#timers.get(u)
    if (t !== undefined) clearTimeout(t)
    this.#timers.delete(u)
  }

  /** Seconds until the first ejection ends, for Retry-After. */
  get cooldownSeconds (): number {
    return Math.max(1, Math.ceil(this.#config.cooldownMs / 1000))
  }

  close (): void {
    for (const t of this.#timers.values()) clearTimeout(t)
    this.#timers.clear()
  }
}
