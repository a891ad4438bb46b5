import { promises as dns } from 'node:dns'
import { invalidOption } from '../errors.js'
import type { UpstreamOptions } from '../model/types.js'
import { dnsConfig, type DnsConfig, type DnsDiscoveryOptions } from './dns-options.js'
import { resolveMembers, type Resolution } from './dns-records.js'
import type { UpstreamSource } from '../model/source.js'

export type { DnsDiscoveryOptions } from './dns-options.js'

/**
 * Each query goes to each server twice before c-ares gives up (the second time with
 * twice the timeout): one lost UDP datagram should not count as a failed resolution.
 */
const TRIES = 2

/**
 * Membership from DNS, re-resolved every `intervalMs` as Envoy's STRICT_DNS clusters
 * and nginx's `resolve` do: A/AAAA records of `name` (one upstream per address, id
 * `address:port`, `[v6]:port`) or SRV records of `srv` (one per record, id
 * `target:port`; see dns-records.ts for priority, weight and target addresses).
 * Ids come from DNS data only, so every instance asking the same DNS derives the same
 * ids, and with them the same hash and cookie decisions.
 *
 * A failed, timed-out, SERVFAIL, NXDOMAIN or empty resolution is reported through
 * `error` and emits nothing: the last membership stands (an empty list is never
 * emitted). DNS answers are not cached here: `intervalMs` is the refresh period, as
 * Envoy's `dns_refresh_rate` is, whatever the records' TTL.
 */
export function dnsDiscovery (opts: DnsDiscoveryOptions): UpstreamSource {
  const config = dnsConfig(opts)
  return {
    subscribe (update, error) {
      if (typeof update !== 'function' || typeof error !== 'function') throw invalidOption('subscribe', 'expected (update, error) functions')
      return watch(config, update, error)
    },
  }
}

/**
 * One subscription: its own resolver (so unsubscribing can cancel its queries) and
 * its own timer. Rounds never overlap: the next starts `intervalMs` after one ends.
 */
function watch (config: DnsConfig, update: (list: UpstreamOptions[]) => void, error: (err: Error) => void): () => void {
  const resolver = new dns.Resolver({ timeout: config.timeoutMs, tries: TRIES })
  if (config.servers !== undefined) resolver.setServers(config.servers)
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  /** The list last emitted, as text: compared before emitting (below). */
  let last: string | undefined

  const round = async (): Promise<void> => {
    timer = undefined
    let result: Resolution
    try {
      result = await resolveMembers(resolver, config)
    } catch (err) {
      result = { members: [], problem: err instanceof Error ? err : new Error(String(err)) }
    }
    if (stopped) return
    try {
      if (result.members.length > 0) {
        // An unchanged list is not emitted: building this text is O(members) per
        // round, while every update costs the balancer a diff of the whole list and
        // its listeners (logs, metrics, a control plane) an event that says nothing.
        const text = signature(result.members)
        if (text !== last) {
          last = text
          update(result.members)
        }
      }
      if (result.problem !== undefined && !stopped) error(result.problem)
    } finally {
      if (!stopped) {
        timer = setTimeout(run, config.intervalMs)
        // Re-resolution alone must not keep a process alive.
        timer.unref()
      }
    }
  }
  // A listener that throws has a bug: let it surface as an uncaught exception, as a
  // throwing EventEmitter listener would, instead of an anonymous rejected promise.
  const run = (): void => { round().catch((err: unknown) => process.nextTick(() => { throw err })) }

  run()
  return () => {
    if (stopped) return
    stopped = true
    clearTimeout(timer)
    // In-flight queries end with ECANCELLED; `stopped` keeps them from being reported.
    resolver.cancel()
  }
}

function signature (members: readonly UpstreamOptions[]): string {
  let text = ''
  for (const m of members) text += `${m.id} ${m.url} ${m.weight}\n`
  return text
}
