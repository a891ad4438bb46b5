/**
 * A small reader of the Prometheus text exposition format (version 0.0.4), enough
 * for the metrics tests to compare a scrape with balancer.stats().
 */
import type { BalancerStats } from '@affinity/core'

export type Labels = Record<string, string>
export interface Sample { name: string, labels: Labels, value: number }

/** `name{a="1",b="2"}` with the labels sorted: one key per series. */
export function seriesKey (name: string, labels: Labels = {}): string {
  const parts = Object.keys(labels).sort().map(k => `${k}=${JSON.stringify(labels[k])}`)
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`
}

export class Scrape {
  readonly samples: Sample[] = []
  readonly types = new Map<string, string>()
  readonly #byKey = new Map<string, number>()

  constructor (text: string) {
    for (const line of text.split('\n')) {
      if (line.startsWith('# TYPE ')) {
        const [, , name, type] = line.split(' ')
        this.types.set(name!, type!)
        continue
      }
      if (line === '' || line.startsWith('#')) continue
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
      if (m === null) throw new Error(`not an exposition line: ${line}`)
      const labels: Labels = {}
      for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[k!] = v!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c))
      }
      const sample = { name: m[1]!, labels, value: Number(m[3]) }
      this.samples.push(sample)
      this.#byKey.set(seriesKey(sample.name, labels), sample.value)
    }
  }

  /** The sample's value, or undefined when the series is absent. */
  get (name: string, labels: Labels = {}): number | undefined {
    return this.#byKey.get(seriesKey(name, labels))
  }

  /** The sum of every series of `name` whose labels include `match`. */
  sum (name: string, match: Labels = {}): number {
    return this.#matching(name, match).reduce((n, s) => n + s.value, 0)
  }

  /** The label sets of every series of `name` whose labels include `match`. */
  series (name: string, match: Labels = {}): Labels[] {
    return this.#matching(name, match).map(s => s.labels)
  }

  /**
   * One balancer's series under `prefix`, by key, without the histogram's buckets
   * and sums (what `expectedFromStats` predicts).
   */
  of (balancer: string, prefix = 'affinity_'): Record<string, number> {
    const out: Record<string, number> = {}
    for (const s of this.samples) {
      if (!s.name.startsWith(prefix) || s.labels.balancer !== balancer || s.name.endsWith('_bucket') || s.name.endsWith('_sum')) continue
      out[seriesKey(s.name, s.labels)] = s.value
    }
    return out
  }

  #matching (name: string, match: Labels): Sample[] {
    return this.samples.filter(s => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
  }
}

/**
 * Every series a scrape should hold for one balancer, from its stats(): counters
 * and gauges as the balancer counts them, and a histogram count per attempt (for
 * metrics enabled before the first request).
 */
export function expectedFromStats (stats: BalancerStats, balancer: string, prefix = 'affinity_'): Record<string, number> {
  const out: Record<string, number> = {}
  const put = (name: string, labels: Labels, value: number): void => { out[seriesKey(prefix + name, { balancer, ...labels })] = value }
  for (const u of stats.upstreams) {
    const upstream = u.id
    for (const [outcome, n] of Object.entries(u.outcomes)) {
      put('upstream_requests_total', { upstream, outcome }, n)
      if (n > 0) put('upstream_request_duration_seconds_count', { upstream, outcome }, n)
    }
    put('upstream_ejections_total', { upstream }, u.ejectionsTotal)
    put('health_checks_total', { upstream, result: 'pass' }, u.health.passed)
    put('health_checks_total', { upstream, result: 'fail' }, u.health.failed)
    put('upstream_in_flight', { upstream }, u.inFlight)
    put('upstream_queued', { upstream }, u.queued)
    if (u.maxInFlight !== undefined) put('upstream_max_in_flight', { upstream }, u.maxInFlight)
    put('upstream_websockets', { upstream }, u.websockets)
    if (u.boundUsers !== undefined) put('upstream_bound_users', { upstream }, u.boundUsers)
    put('upstream_weight', { upstream }, u.weight)
    put('upstream_effective_weight', { upstream }, u.effectiveWeight)
    for (const state of ['up', 'down', 'draining']) put('upstream_state', { upstream, state }, u.state === state ? 1 : 0)
  }
  for (const [reason, n] of Object.entries(stats.picks)) put('picks_total', { reason }, n)
  put('retries_total', { result: 'made' }, stats.retries.made)
  put('retries_total', { result: 'refused' }, stats.retries.refused)
  if (stats.store?.evicted !== undefined) put('stick_evictions_total', { table: 'store' }, stats.store.evicted)
  if (stats.tokenCache !== undefined) put('stick_evictions_total', { table: 'token_cache' }, stats.tokenCache.evicted)
  put('panic', {}, stats.panic ? 1 : 0)
  if (stats.discovery !== undefined) {
    put('discovery_members', {}, stats.discovery.members)
    put('discovery_errors_total', {}, stats.discovery.errors)
    if (stats.discovery.lastUpdate !== null) put('discovery_last_update_timestamp_seconds', {}, stats.discovery.lastUpdate / 1000)
  }
  return out
}
