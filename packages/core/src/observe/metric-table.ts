import type { BalancerStats, UpstreamState } from '../model/types.js'

/**
 * The counters and gauges of metrics.ts, one row a metric: its name, help, labels
 * and how to read its series from `balancer.stats()` at scrape time.
 */

export type Labels = Record<string, string>
type Series = Iterable<[Labels, number]>

export interface Definition {
  type: 'counter' | 'gauge'
  name: string
  help: string
  labels: string[]
  series (s: BalancerStats): Series
}

const STATES: readonly UpstreamState[] = ['up', 'down', 'draining']

/** Everything but the histogram: one row a metric, each read from stats() at scrape time. */
export const DEFINITIONS: readonly Definition[] = [
  {
    type: 'counter',
    name: 'upstream_requests_total',
    help: 'Attempts at the upstream by how they ended (a retried request counts once per upstream tried).',
    labels: ['upstream', 'outcome'],
    * series (s) { for (const u of s.upstreams) for (const [outcome, n] of Object.entries(u.outcomes)) yield [{ upstream: u.id, outcome }, n] },
  },
  {
    type: 'counter',
    name: 'picks_total',
    help: "Upstream picks by the strategy's reason (sticky hit, new assignment, failover...), retries included.",
    labels: ['reason'],
    * series (s) { for (const [reason, n] of Object.entries(s.picks)) yield [{ reason }, n] },
  },
  {
    type: 'counter',
    name: 'upstream_ejections_total',
    help: 'Passive health ejections of the upstream (consecutive failures).',
    labels: ['upstream'],
    * series (s) { for (const u of s.upstreams) yield [{ upstream: u.id }, u.ejectionsTotal] },
  },
  {
    type: 'counter',
    name: 'health_checks_total',
    help: 'Active health checks of the upstream by result.',
    labels: ['upstream', 'result'],
    * series (s) {
      for (const u of s.upstreams) {
        yield [{ upstream: u.id, result: 'pass' }, u.health.passed]
        yield [{ upstream: u.id, result: 'fail' }, u.health.failed]
      }
    },
  },
  {
    type: 'gauge',
    name: 'upstream_in_flight',
    help: 'HTTP requests in flight to the upstream.',
    labels: ['upstream'],
    * series (s) { for (const u of s.upstreams) yield [{ upstream: u.id }, u.inFlight] },
  },
  {
    type: 'gauge',
    name: 'upstream_websockets',
    help: 'WebSocket tunnels open to the upstream.',
    labels: ['upstream'],
    * series (s) { for (const u of s.upstreams) yield [{ upstream: u.id }, u.websockets] },
  },
  {
    type: 'gauge',
    name: 'upstream_bound_users',
    help: 'Users bound to the upstream and seen within the strategy window (stickyCookie, stickyIp only).',
    labels: ['upstream'],
    * series (s) { for (const u of s.upstreams) if (u.boundUsers !== undefined) yield [{ upstream: u.id }, u.boundUsers] },
  },
  {
    type: 'gauge',
    name: 'upstream_weight',
    help: 'Configured weight of the upstream.',
    labels: ['upstream'],
    * series (s) { for (const u of s.upstreams) yield [{ upstream: u.id }, u.weight] },
  },
  {
    type: 'gauge',
    name: 'upstream_effective_weight',
    help: 'Weight the upstream takes new users by: its configured weight, or less while slow start ramps it.',
    labels: ['upstream'],
    * series (s) { for (const u of s.upstreams) yield [{ upstream: u.id }, u.effectiveWeight] },
  },
  {
    // One series per state, 1 for the current one (as kube-state-metrics does), so
    // `affinity_upstream_state{state="down"} == 1` selects the down upstreams.
    type: 'gauge',
    name: 'upstream_state',
    help: 'Upstream state: 1 for the current state (up, down or draining), 0 for the others.',
    labels: ['upstream', 'state'],
    * series (s) { for (const u of s.upstreams) for (const state of STATES) yield [{ upstream: u.id, state }, u.state === state ? 1 : 0] },
  },
  {
    type: 'gauge',
    name: 'stick_store_degraded',
    help: '1 while the shared stick store (Redis) is unavailable and a local fallback answers, else 0 (stickyIp with a shared store only).',
    labels: [],
    * series (s) { if (s.store?.degraded !== undefined) yield [{}, s.store.degraded ? 1 : 0] },
  },
  {
    type: 'counter',
    name: 'stick_store_fallback_reads_total',
    help: 'Stick-table reads answered by the local fallback because the shared store was unavailable.',
    labels: [],
    * series (s) { if (s.store?.fallbackReads !== undefined) yield [{}, s.store.fallbackReads] },
  },
  {
    type: 'counter',
    name: 'stick_store_outages_total',
    help: 'Switches from the shared stick store to the local fallback.',
    labels: [],
    * series (s) { if (s.store?.outages !== undefined) yield [{}, s.store.outages] },
  },
  {
    type: 'counter',
    name: 'stick_store_errors_total',
    help: 'Shared stick store commands that failed (errors) or took longer than its timeout (timeouts).',
    labels: ['kind'],
    * series (s) {
      if (s.store?.errors === undefined || s.store.timeouts === undefined) return
      yield [{ kind: 'error' }, s.store.errors]
      yield [{ kind: 'timeout' }, s.store.timeouts]
    },
  },
  {
    type: 'gauge',
    name: 'discovery_members',
    help: "Members in the membership source's last list (a source such as dnsDiscovery only).",
    labels: [],
    * series (s) { if (s.discovery !== undefined) yield [{}, s.discovery.members] },
  },
  {
    type: 'counter',
    name: 'discovery_errors_total',
    help: 'Failed resolutions (or refused lists) of the membership source; each left the membership as it was.',
    labels: [],
    * series (s) { if (s.discovery !== undefined) yield [{}, s.discovery.errors] },
  },
  {
    type: 'gauge',
    name: 'discovery_last_update_timestamp_seconds',
    help: 'When the membership source last sent a list that was applied (Unix time; a source sends one when membership changes).',
    labels: [],
    * series (s) { if (s.discovery?.lastUpdate != null) yield [{}, s.discovery.lastUpdate / 1000] },
  },
  {
    type: 'gauge',
    name: 'upstream_queued',
    help: 'Requests waiting in the upstream\'s queue for a slot (maxInFlight).',
    labels: ['upstream'],
    * series (s) { for (const u of s.upstreams) yield [{ upstream: u.id }, u.queued] },
  },
  {
    type: 'gauge',
    name: 'upstream_max_in_flight',
    help: 'The upstream\'s maxInFlight (only upstreams that have one).',
    labels: ['upstream'],
    * series (s) { for (const u of s.upstreams) if (u.maxInFlight !== undefined) yield [{ upstream: u.id }, u.maxInFlight] },
  },
  {
    type: 'counter',
    name: 'retries_total',
    help: 'Failover retries made, and refused by the retry budget (the client got the error).',
    labels: ['result'],
    * series (s) {
      yield [{ result: 'made' }, s.retries.made]
      yield [{ result: 'refused' }, s.retries.refused]
    },
  },
  {
    // A full table drops a binding before its time: that user is silently re-placed.
    type: 'counter',
    name: 'stick_evictions_total',
    help: 'Entries evicted before their time because the table was full: stickyIp\'s in-memory stick table (store), stickyCookie\'s verified-token cache (token_cache).',
    labels: ['table'],
    * series (s) {
      if (s.store?.evicted !== undefined) yield [{ table: 'store' }, s.store.evicted]
      if (s.tokenCache !== undefined) yield [{ table: 'token_cache' }, s.tokenCache.evicted]
    },
  },
  {
    type: 'gauge',
    name: 'panic',
    help: '1 while panic mode ignores health (too few upstreams up), else 0.',
    labels: [],
    * series (s) { yield [{}, s.panic ? 1 : 0] },
  },
]
