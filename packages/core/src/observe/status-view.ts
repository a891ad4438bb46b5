import type { Balancer } from '../balancer/balancer.js'
import type { BalancerStats, DiscoveryStats, StateChange, TokenCacheStats, UpstreamStats } from '../model/types.js'
import type { StoreStats } from '../stick/store.js'
import type { StatsHistory } from './history.js'
import { chartGeometry, type ChartGeometry } from './status-chart.js'

/** One upstream as the status page shows it: its stats, its URL only when opted in. */
export interface StatusUpstream extends Omit<UpstreamStats, 'url' | 'boundUsers' | 'maxInFlight' | 'maxWebSockets'> {
  url?: string
  /** null for strategies that bind nobody. */
  boundUsers: number | null
  /** null: no limit. */
  maxInFlight: number | null
  maxWebSockets: number | null
  /** Mean wait in its queue since start, ms (null: nobody waited). */
  queueWaitMeanMs: number | null
}

/** The JSON view (`?format=json`): what the page shows, and what its script re-renders from. */
export interface StatusView {
  at: number
  name: string | null
  strategy: string
  panic: boolean
  /** How often the page fetches this view. */
  refreshMs: number
  totals: {
    upstreams: number
    up: number
    draining: number
    down: number
    inFlight: number
    /** Requests waiting in queues for capacity. */
    queued: number
    websockets: number
    requests: number
    boundUsers: number | null
    /** Requests per second over the last sample interval (null before the second sample). */
    rps: number | null
  }
  upstreams: StatusUpstream[]
  picks: Record<string, number>
  /** Newest last, as in stats(). */
  changes: StateChange[]
  /** stickyIp's store (a shared store's health, an in-memory table's fill and evictions), as in stats(); null otherwise. */
  store: StoreStats | null
  /** stickyCookie's verified-token cache, as in stats(); null otherwise. */
  tokenCache: TokenCacheStats | null
  /** Failover retries made and refused by the retry budget. */
  retries: BalancerStats['retries']
  /** Entries the strategy's bounded tables evicted before their time (null: it has none). */
  evicted: number | null
  /** How a membership source (dnsDiscovery…) is followed, as in stats(); null for a fixed list. */
  discovery: DiscoveryStats | null
  history: {
    intervalMs: number
    windowMs: number
    /** The current upstreams, in the order of `upstreams`; the arrays below are aligned with it. */
    ids: string[]
    samples: Array<{ at: number, rps: Array<number | null>, inFlight: Array<number | null>, boundUsers: Array<number | null> }>
  }
  chart: ChartGeometry
}

const round2 = (n: number): number => Math.round(n * 100) / 100

function upstreamView (u: UpstreamStats, showUrls: boolean): StatusUpstream {
  // Upstream URLs are internal addresses: left out unless the user opted in.
  const { url, boundUsers, maxInFlight, maxWebSockets, ...rest } = u
  const view = {
    ...rest,
    boundUsers: boundUsers ?? null,
    maxInFlight: maxInFlight ?? null,
    maxWebSockets: maxWebSockets ?? null,
    queueWaitMeanMs: u.queueWait.count === 0 ? null : round2(u.queueWait.totalMs / u.queueWait.count),
  }
  return showUrls ? { ...view, url } : view
}

function sum (ups: readonly UpstreamStats[], f: (u: UpstreamStats) => number): number {
  return ups.reduce((n, u) => n + f(u), 0)
}

export function statusView (balancer: Balancer, history: StatsHistory, opts: { showUrls: boolean, refreshMs: number }): StatusView {
  const stats: BalancerStats = balancer.stats()
  const ids = stats.upstreams.map(u => u.id)
  const samples = history.samples(stats.at).map(s => {
    const pick = <T>(f: (x: { rps: number, inFlight: number, boundUsers: number | undefined }) => T | undefined): Array<T | null> =>
      ids.map(id => { const x = s.upstreams.get(id); return x === undefined ? null : f(x) ?? null })
    return { at: s.at, rps: pick(x => round2(x.rps)), inFlight: pick(x => x.inFlight), boundUsers: pick(x => x.boundUsers) }
  })
  const last = samples.at(-1)
  const ups = stats.upstreams
  const sticky = ups.some(u => u.boundUsers !== undefined)
  return {
    at: stats.at,
    name: balancer.name ?? null,
    strategy: stats.strategy,
    panic: stats.panic,
    refreshMs: opts.refreshMs,
    totals: {
      upstreams: ups.length,
      up: ups.filter(u => u.state === 'up').length,
      draining: ups.filter(u => u.state === 'draining').length,
      down: ups.filter(u => u.state === 'down').length,
      inFlight: sum(ups, u => u.inFlight),
      queued: sum(ups, u => u.queued),
      websockets: sum(ups, u => u.websockets),
      requests: sum(ups, u => u.requests),
      boundUsers: sticky ? sum(ups, u => u.boundUsers ?? 0) : null,
      rps: last === undefined ? null : round2(last.rps.reduce<number>((n, v) => n + (v ?? 0), 0)),
    },
    upstreams: ups.map(u => upstreamView(u, opts.showUrls)),
    picks: stats.picks,
    changes: stats.changes,
    store: stats.store ?? null,
    discovery: stats.discovery ?? null,
    tokenCache: stats.tokenCache ?? null,
    retries: stats.retries,
    evicted: stats.store?.evicted === undefined && stats.tokenCache === undefined ? null : (stats.store?.evicted ?? 0) + (stats.tokenCache?.evicted ?? 0),
    history: { intervalMs: history.intervalMs, windowMs: history.windowMs, ids, samples },
    chart: chartGeometry(samples.map(s => ({ at: s.at, values: s.rps })), ids.length, stats.at, history.windowMs),
  }
}
