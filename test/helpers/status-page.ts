import type { Test } from 'tap'
import { createBalancer, stickyCookie, type Balancer, type BalancerOptions, type BalancerStats, type StatusUpstream } from '@affinity/core'
import { Browser } from './http.js'
import { startUpstreams, type TestUpstream } from './upstreams.js'

/** Shared by the status page scenarios (both adapters) and the browser test. */

export const STATUS_SECRET = 'status-page-secret-0123456789abcdefghijklmno'

/** Ids no browser or HTML parser may take for markup: each must render as the text it is. */
export const HOSTILE_IDS = [
  '<img src=x onerror=alert(1)>',
  '"><script>alert(2)</script>',
  "' onmouseover='alert(3)' x='",
] as const

/** Three real upstreams and a caller-owned stickyCookie balancer over them, all closed with the test. */
export async function stickyTrio (t: Test, ids?: readonly string[], extra: Partial<BalancerOptions> = {}): Promise<{ ups: TestUpstream[], balancer: Balancer }> {
  const ups = await startUpstreams(3)
  const balancer = createBalancer({
    upstreams: ups.map((u, i) => ({ url: u.url, id: ids?.[i] ?? u.name })),
    strategy: stickyCookie({ secret: STATUS_SECRET }),
    ...extra,
  })
  // Registered first, so run last: after the app (which the harness tears down) is closed.
  t.teardown(async () => { await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  return { ups, balancer }
}

/**
 * Browser-like users (each keeps its cookie) visiting `base`/echo a few times each,
 * then a drain of `drain` (a state change) and a few more new users, who avoid it.
 * Returns when every response has arrived: nothing is in flight afterwards.
 */
export async function stickyTraffic (base: string, balancer: Balancer, drain: string, users = 6, visits = 3): Promise<void> {
  const browsers = Array.from({ length: users }, () => new Browser())
  for (let i = 0; i < visits; i++) for (const user of browsers) await user.visit(base)
  void balancer.drain(drain)
  for (let i = 0; i < 3; i++) await new Browser().visit(base)
}

/** stats().upstreams as the status page's JSON view carries them: no URL unless shown, null for no bound count or no limit. */
export function viewOf (stats: BalancerStats, showUrls = false): StatusUpstream[] {
  return stats.upstreams.map(({ url, boundUsers, maxInFlight, maxWebSockets, ...rest }) => ({
    ...rest,
    ...(showUrls ? { url } : {}),
    boundUsers: boundUsers ?? null,
    maxInFlight: maxInFlight ?? null,
    maxWebSockets: maxWebSockets ?? null,
    queueWaitMeanMs: rest.queueWait.count === 0 ? null : Math.round(rest.queueWait.totalMs / rest.queueWait.count * 100) / 100,
  }))
}
