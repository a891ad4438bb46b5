import type { Balancer } from '../balancer/balancer.js'
import { invalidOption } from '../errors.js'
import { finiteNumber } from '../options.js'

export interface HistoryOptions {
  /** How often a sample is taken (default 5 s). */
  intervalMs?: number
  /** How much history is kept (default 15 min); older samples are overwritten. */
  windowMs?: number
}

/** One upstream in one sample. */
export interface UpstreamSample {
  /** Requests per second since the previous sample (attempts, retries included). */
  rps: number
  inFlight: number
  /** Users bound there (sticky strategies), else undefined. */
  boundUsers: number | undefined
}

export interface Sample {
  /** Epoch milliseconds. */
  at: number
  /** By upstream id (ids are user strings: a Map, never an object's keys). */
  upstreams: ReadonlyMap<string, UpstreamSample>
}

/** The most samples a history keeps: windowMs / intervalMs is capped so memory stays small. */
const MAX_SAMPLES = 10_000

export function historyConfig (opts: HistoryOptions = {}): Required<HistoryOptions> {
  const intervalMs = finiteNumber('intervalMs', opts.intervalMs, 5000, { min: 100 }, 'expected milliseconds ≥ 100')
  const windowMs = finiteNumber('windowMs', opts.windowMs, 15 * 60_000, { min: intervalMs }, 'expected milliseconds ≥ intervalMs')
  if (windowMs / intervalMs > MAX_SAMPLES) throw invalidOption('windowMs', `keeps at most ${MAX_SAMPLES} samples: raise intervalMs or shorten windowMs`)
  return { intervalMs, windowMs }
}

/**
 * What the status page charts: every `intervalMs`, per upstream, the request rate
 * since the previous sample, requests in flight and bound users, in a fixed ring of
 * `windowMs / intervalMs` samples (HAProxy keeps rates over a sliding period the
 * same way, never a growing log). The timer is unref'd: it never keeps a process up.
 */
export class StatsHistory {
  readonly intervalMs: number
  readonly windowMs: number
  readonly #balancer: Balancer
  readonly #ring: Array<Sample | undefined>
  #next = 0
  #timer: NodeJS.Timeout | undefined
  /** Request counters at the previous sample, by upstream id. */
  #last: { at: number, requests: Map<string, number> } | undefined

  constructor (balancer: Balancer, opts: HistoryOptions = {}) {
    const c = historyConfig(opts)
    this.intervalMs = c.intervalMs
    this.windowMs = c.windowMs
    this.#balancer = balancer
    this.#ring = new Array<Sample | undefined>(Math.ceil(c.windowMs / c.intervalMs)).fill(undefined)
  }

  get running (): boolean {
    return this.#timer !== undefined
  }

  /** Takes the baseline at once, then a sample every intervalMs. */
  start (): void {
    if (this.#timer !== undefined) return
    this.sample()
    this.#timer = setInterval(() => this.sample(), this.intervalMs)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /**
   * Reads the balancer once. The first call only sets the baseline (a rate needs two
   * readings); later calls store a sample. Called by the timer; public for tests.
   */
  sample (): void {
    const stats = this.#balancer.stats()
    const requests = new Map<string, number>()
    const upstreams = new Map<string, UpstreamSample>()
    const last = this.#last
    const seconds = last === undefined ? 0 : (stats.at - last.at) / 1000
    for (const u of stats.upstreams) {
      requests.set(u.id, u.requests)
      if (last === undefined) continue
      // An upstream removed and added again under the same id starts counting at 0.
      const before = last.requests.get(u.id) ?? 0
      const delta = u.requests >= before ? u.requests - before : u.requests
      upstreams.set(u.id, { rps: seconds > 0 ? delta / seconds : 0, inFlight: u.inFlight, boundUsers: u.boundUsers })
    }
    this.#last = { at: stats.at, requests }
    if (last === undefined) return
    this.#ring[this.#next] = { at: stats.at, upstreams }
    this.#next = (this.#next + 1) % this.#ring.length
  }

  /** The samples within the window, oldest first. */
  samples (now = Date.now()): Sample[] {
    const out: Sample[] = []
    const since = now - this.windowMs
    for (let i = 0; i < this.#ring.length; i++) {
      const s = this.#ring[(this.#next + i) % this.#ring.length]
      if (s !== undefined && s.at >= since) out.push(s)
    }
    return out
  }
}
