import type { Members } from '../model/members.js'
import type { BalancerStats, DiscoveryStats, StateChange } from '../model/types.js'
import type { Strategy } from '../strategies/strategy.js'

/**
 * What an operator reads off HAProxy's stats page: per upstream its state,
 * counters, outcomes, bound users and health-check history; picks by reason; the
 * recent state changes. A fresh copy (nothing here is live); never per request.
 */
export function balancerStats (members: Members, strategy: Strategy, picks: Record<string, number>, changes: StateChange[], discovery: DiscoveryStats | undefined, retries: BalancerStats['retries']): BalancerStats {
  const bound = strategy.bound?.()
  return {
    at: Date.now(),
    strategy: strategy.name,
    panic: members.panic,
    upstreams: members.all.map(u => ({
      ...u.info(),
      effectiveWeight: members.weightOf(u),
      outcomes: { ...u.outcomes },
      boundUsers: bound === undefined ? undefined : (bound.get(u.id) ?? 0),
      health: { checks: u.checksPassed + u.checksFailed, passed: u.checksPassed, failed: u.checksFailed, recent: u.recentChecks.map(c => ({ ...c })) },
      ejectionsTotal: u.ejectionsTotal,
      ejected: u.ejected,
      maxInFlight: u.maxInFlight === Infinity ? undefined : u.maxInFlight,
      maxWebSockets: u.maxWebSockets === Infinity ? undefined : u.maxWebSockets,
      queueWait: { count: u.queueWaits, totalMs: u.queueWaitMs },
    })),
    picks: { ...picks },
    changes,
    store: strategy.storeStats?.(),
    discovery,
    tokenCache: strategy.tokenCacheStats?.(),
    retries,
  }
}
