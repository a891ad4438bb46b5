import { invalidOption } from '../errors.js'
import { knownKeys, milliseconds, wholeNumber } from '../options.js'
import type { HealthOptions } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'

export interface ActiveConfig { path: string, intervalMs: number, timeoutMs: number, rise: number, fall: number }

export function activeConfig (opts: HealthOptions | undefined): ActiveConfig | undefined {
  if (opts === undefined) return undefined
  if (opts === null || typeof opts !== 'object' || typeof opts.path !== 'string' || opts.path[0] !== '/') {
    throw invalidOption('health.path', "expected a path such as '/health'")
  }
  knownKeys('health', opts, ['path', 'intervalMs', 'timeoutMs', 'rise', 'fall'])
  return {
    path: opts.path,
    intervalMs: milliseconds('health.intervalMs', opts.intervalMs, 2000, { positive: true }),
    timeoutMs: milliseconds('health.timeoutMs', opts.timeoutMs, 1000, { positive: true }),
    rise: wholeNumber('health.rise', opts.rise, 2, 1),
    fall: wholeNumber('health.fall', opts.fall, 3, 1),
  }
}

interface Probe { timer: NodeJS.Timeout | undefined, passes: number, fails: number, stopped: boolean }

/**
 * Active HTTP checks (HAProxy `check inter rise fall`, nginx Plus health_check):
 * GET `path` every `intervalMs`; a 2xx or 3xx within `timeoutMs` passes. `fall`
 * consecutive failures take an upstream down, `rise` consecutive passes bring it
 * back. Upstreams start up and are checked at once, as HAProxy does. Checks run
 * one at a time per upstream (the next is scheduled when one ends), so a slow
 * upstream is never probed by overlapping requests.
 */
export class ActiveHealth {
  readonly #config: ActiveConfig
  readonly #changed: (u: Upstream, reason: string) => void
  readonly #probes = new Map<Upstream, Probe>()

  constructor (config: ActiveConfig, changed: (u: Upstream, reason: string) => void) {
    this.#config = config
    this.#changed = changed
  }

  start (u: Upstream): void {
    const probe: Probe = { timer: undefined, passes: 0, fails: 0, stopped: false }
    this.#probes.set(u, probe)
    void this.#check(u, probe)
  }

  stop (u: Upstream): void {
    const probe = this.#probes.get(u)
    if (probe === undefined) return
    probe.stopped = true
    if (probe.timer !== undefined) clearTimeout(probe.timer)
    this.#probes.delete(u)
  }

  close (): void {
    for (const u of [...this.#probes.keys()]) this.stop(u)
  }

  async #check (u: Upstream, probe: Probe): Promise<void> {
    const { path, timeoutMs, intervalMs, rise, fall } = this.#config
    let ok = false
    let why = ''
    const started = performance.now()
    try {
      const res = await u.pool.request({
        path: u.basePath + path,
        method: 'GET',
        headers: { 'user-agent': 'affinity-health-check' },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      })
      await res.body.dump()
      ok = res.statusCode >= 200 && res.statusCode < 400
      why = `health check answered ${res.statusCode}`
    } catch (err) {
      why = `health check failed (${(err as { code?: string }).code ?? (err as Error).name})`
    }
    if (probe.stopped) return
    u.recordCheck({ at: Date.now(), ok, detail: why.slice('health check '.length), ms: Math.round(performance.now() - started) })
    if (ok) {
      probe.passes++
      probe.fails = 0
      if (!u.healthy && probe.passes >= rise) {
        u.healthy = true
        this.#changed(u, `${probe.passes} health checks passed`)
      }
    } else {
      probe.fails++
      probe.passes = 0
      if (u.healthy && probe.fails >= fall) {
        u.healthy = false
        this.#changed(u, why)
      }
    }
    probe.timer = setTimeout(() => { void this.#check(u, probe) }, intervalMs)
    probe.timer.unref()
  }
}
