import type * as PromClient from 'prom-client'
import type { Balancer } from '../balancer/balancer.js'
import type { OutcomeListener, QueueWaitListener } from '../balancer/events.js'
import { isBalancer } from '../balancer/brand.js'
import { AffinityError, invalidOption } from '../errors.js'
import { knownKeys, optionsObject } from '../options.js'
import type { BalancerStats, UpstreamInfo } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { DEFINITIONS, type Labels } from './metric-table.js'

/**
 * Prometheus metrics through prom-client, an optional peer dependency: it is
 * imported here, lazily, so an app that never asks for metrics never loads it.
 *
 * Counters and gauges are not kept twice: at scrape time each one's `collect()`
 * reads `balancer.stats()` and reports the balancer's own totals (reset, then set
 * to the total, never added to). Only the histograms need feeds of their own
 * (`balancer.onOutcome` for the latency, `balancer.onQueueWait` for queue waits). Labels are the balancer's `name`, the upstream's `id`
 * (what the operator chose; URLs may be internal addresses and are never labels),
 * and small fixed sets (outcome, reason, state, result).
 */

/**
 * The part of a prom-client `Registry` used here, written out so that @affinity/core's
 * types do not depend on prom-client being installed. Any prom-client 15 `Registry`
 * (Prometheus or OpenMetrics content type) fits.
 */
export interface MetricsRegistry {
  readonly contentType: string
  metrics (): Promise<string>
  getSingleMetric (name: string): unknown
  removeSingleMetric (name: string): void
}

export interface MetricsOptions<R extends MetricsRegistry = MetricsRegistry> {
  /**
   * Where the metrics are registered. Default: a new Registry of their own, never
   * prom-client's global one, so two balancers or two apps in one process do not
   * collide. Pass yours to expose them next to your app's metrics.
   */
  registry?: R
  /** Prepended to every metric name (default 'affinity_'). */
  prefix?: string
  /**
   * Histogram buckets in seconds (default 0.005 … 10, prom-client's, suited to
   * proxied HTTP). Fixed by the first balancer that registers in a registry.
   */
  buckets?: readonly number[]
}

export interface AffinityMetrics<R extends MetricsRegistry = MetricsRegistry> {
  readonly registry: R
  /** The Content-Type of `metrics()` (the registry's: Prometheus text 0.0.4 by default). */
  readonly contentType: string
  /** The exposition text of the whole registry (your own metrics too, when it is yours). */
  metrics (): Promise<string>
  /**
   * Stops timing requests and removes this balancer's series from the registry (the
   * metrics themselves once no balancer reports to it). The balancer stays open.
   */
  close (): void
}

type Prom = typeof PromClient

const BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const DURATION = 'upstream_request_duration_seconds'
const QUEUE_WAIT = 'queue_wait_seconds'

/** One balancer reporting to a family: its `balancer` label and a stats() copy per scrape. */
class Source {
  readonly balancer: Balancer
  readonly label: string
  #cached: BalancerStats | undefined

  constructor (balancer: Balancer, label: string) {
    this.balancer = balancer
    this.label = label
  }

  snapshot (): BalancerStats {
    if (this.#cached === undefined) {
      this.#cached = this.balancer.stats()
      // Every collect() of one scrape runs in the same tick (registry.metrics()
      // calls them all before awaiting): one stats() copy serves them all.
      queueMicrotask(() => { this.#cached = undefined })
    }
    return this.#cached
  }
}

/**
 * The metrics registered under one prefix in one registry, shared by every
 * balancer that reports there: prom-client allows one metric per name, so two
 * balancers in one registry share the metrics and differ by the `balancer` label.
 */
class Family {
  readonly sources = new Map<string, Source>()
  readonly names: string[]
  readonly histogram: PromClient.Histogram
  readonly waits: PromClient.Histogram

  constructor (prom: Prom, registry: PromClient.Registry, prefix: string, buckets: readonly number[]) {
    this.names = [...DEFINITIONS.map(d => prefix + d.name), prefix + DURATION, prefix + QUEUE_WAIT]
    for (const name of this.names) {
      if (registry.getSingleMetric(name) !== undefined) throw invalidOption('registry', `it already holds a metric named ${name}: pass another \`prefix\``)
    }
    const registers = [registry]
    for (const d of DEFINITIONS) {
      const common = { name: prefix + d.name, help: d.help, labelNames: ['balancer', ...d.labels], registers }
      const fill = (write: (labels: Labels, value: number) => void): void => {
        for (const src of this.sources.values()) for (const [labels, value] of d.series(src.snapshot())) write({ balancer: src.label, ...labels }, value)
      }
      // Reset, then the balancer's current figures: totals are reported, never added up.
      if (d.type === 'counter') new prom.Counter({ ...common, collect () { this.reset(); fill((l, v) => this.inc(l, v)) } })
      else new prom.Gauge({ ...common, collect () { this.reset(); fill((l, v) => this.set(l, v)) } })
    }
    this.histogram = new prom.Histogram({
      name: prefix + DURATION,
      help: 'Time from dispatch to the end of the response, per attempt at the upstream (from when metrics were enabled).',
      labelNames: ['balancer', 'upstream', 'outcome'],
      buckets: [...buckets],
      registers,
    })
    this.waits = new prom.Histogram({
      name: prefix + QUEUE_WAIT,
      help: 'Time requests waited in the upstream\'s queue for a slot, by how the wait ended: admitted, timeout, aborted (the client left), moved (the upstream went down).',
      labelNames: ['balancer', 'upstream', 'result'],
      buckets: [...buckets],
      registers,
    })
  }
}

/**
 * One histogram fed per event for one balancer, remembering the series it created
 * by upstream id, so they go with their upstream (removed) or with close().
 */
class Feed {
  readonly #histogram: PromClient.Histogram
  readonly #balancer: string
  readonly #label: string
  readonly #series = new Map<string, Set<string>>()

  constructor (histogram: PromClient.Histogram, balancer: string, label: string) {
    this.#histogram = histogram
    this.#balancer = balancer
    this.#label = label
  }

  observe (u: Upstream, value: string, seconds: number): void {
    // An attempt or wait that outlived its upstream's removal: its series are gone with it.
    if (u.removed) return
    this.#histogram.observe({ balancer: this.#balancer, upstream: u.id, [this.#label]: value }, seconds)
    const values = this.#series.get(u.id)
    if (values === undefined) this.#series.set(u.id, new Set([value]))
    else values.add(value)
  }

  forget (id: string): void {
    for (const value of this.#series.get(id) ?? []) this.#histogram.remove({ balancer: this.#balancer, upstream: id, [this.#label]: value })
    this.#series.delete(id)
  }

  forgetAll (): void {
    for (const id of [...this.#series.keys()]) this.forget(id)
  }
}

/** Families by registry, then prefix. */
const families = new WeakMap<object, Map<string, Family>>()

async function loadPromClient (): Promise<Prom> {
  try {
    return await import('prom-client')
  } catch (err) {
    const e = err as { code?: string, message?: string }
    // Only prom-client itself missing; a broken install (one of its own
    // dependencies missing) keeps its own error.
    if ((e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') && /['"]prom-client['"]/.test(String(e.message))) {
      const missing = new AffinityError('AFFINITY_ERR_PROM_CLIENT_MISSING')
      missing.cause = err
      throw missing
    }
    throw err
  }
}

function checkOptions (opts: MetricsOptions<MetricsRegistry>): { prefix: string, buckets: readonly number[] } {
  knownKeys('metrics', optionsObject('metrics', opts), ['registry', 'prefix', 'buckets'])
  const prefix = opts.prefix ?? 'affinity_'
  if (typeof prefix !== 'string' || !/^(?:[a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(prefix)) {
    throw invalidOption('prefix', 'expected letters, digits, _ and : (a Prometheus metric name prefix)')
  }
  const buckets = opts.buckets ?? BUCKETS
  if (!Array.isArray(buckets) || buckets.length === 0 || !buckets.every((b, i) => Number.isFinite(b) && b > 0 && (i === 0 || b > buckets[i - 1]!))) {
    throw invalidOption('buckets', 'expected increasing numbers of seconds > 0')
  }
  const r = opts.registry as Partial<Record<string, unknown>> | undefined
  if (r !== undefined && (r === null || typeof r !== 'object' || typeof r.registerMetric !== 'function' || typeof r.getSingleMetric !== 'function' || typeof r.removeSingleMetric !== 'function' || typeof r.metrics !== 'function')) {
    throw invalidOption('registry', 'expected a prom-client Registry')
  }
  return { prefix, buckets }
}

/**
 * Exposes a balancer's figures as Prometheus metrics (see docs/observability.md's metric
 * table). Rejects with AFFINITY_ERR_PROM_CLIENT_MISSING when prom-client is not
 * installed. Balancers sharing a registry must have different `name`s.
 */
export async function createMetrics<R extends MetricsRegistry = MetricsRegistry> (balancer: Balancer, opts: MetricsOptions<R> = {}): Promise<AffinityMetrics<R>> {
  if (!isBalancer(balancer)) throw invalidOption('balancer', 'expected a balancer from createBalancer()')
  const { prefix, buckets } = checkOptions(opts)
  // Timing starts with this call, not once prom-client has loaded (an app may serve
  // requests meanwhile): attempts and waits that end before are kept, then observed.
  const early: Array<() => void> = []
  let observe: OutcomeListener = (...attempt) => { early.push(() => observe(...attempt)) }
  let observeWait: QueueWaitListener = (...wait) => { early.push(() => observeWait(...wait)) }
  const detachOutcomes = balancer.onOutcome((u, outcome, seconds) => observe(u, outcome, seconds))
  const detachWaits = balancer.onQueueWait((u, seconds, result) => observeWait(u, seconds, result))
  const detach = (): void => { detachOutcomes(); detachWaits() }
  const label = balancer.name ?? 'default'
  let registry: PromClient.Registry
  let byPrefix: Map<string, Family>
  let family: Family
  try {
    const prom = await loadPromClient()
    // From here on, synchronous: two createMetrics() racing for one registry cannot both create its family.
    registry = (opts.registry ?? new prom.Registry()) as unknown as PromClient.Registry
    byPrefix = families.get(registry) ?? new Map<string, Family>()
    families.set(registry, byPrefix)
    const existing = byPrefix.get(prefix)
    if (existing?.sources.has(label) === true) {
      throw invalidOption('name', `a balancer named ${JSON.stringify(label)} already reports to this registry: give each balancer its own \`name\``)
    }
    family = existing ?? new Family(prom, registry, prefix, buckets)
    byPrefix.set(prefix, family)
  } catch (err) {
    detach()
    throw err
  }
  family.sources.set(label, new Source(balancer, label))

  const durations = new Feed(family.histogram, label, 'outcome')
  const waits = new Feed(family.waits, label, 'result')
  observe = (u, outcome, seconds) => durations.observe(u, outcome, seconds)
  observeWait = (u, seconds, result) => waits.observe(u, result, seconds)
  for (const replay of early.splice(0)) replay()
  const forget = (id: string): void => {
    durations.forget(id)
    waits.forget(id)
  }
  const onRemoved = (u: UpstreamInfo): void => forget(u.id)
  balancer.on('removed', onRemoved)

  let closed = false
  return {
    registry: registry as unknown as R,
    get contentType () { return registry.contentType },
    metrics: () => registry.metrics(),
    close () {
      if (closed) return
      closed = true
      detach()
      balancer.off('removed', onRemoved)
      durations.forgetAll()
      waits.forgetAll()
      family.sources.delete(label)
      if (family.sources.size === 0) {
        for (const name of family.names) registry.removeSingleMetric(name)
        byPrefix.delete(prefix)
      }
    },
  }
}
