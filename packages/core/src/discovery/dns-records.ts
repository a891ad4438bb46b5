import type { promises as dns, SrvRecord } from 'node:dns'
import { isIPv4 } from 'node:net'
import { AffinityError } from '../errors.js'
import type { UpstreamOptions } from '../model/types.js'
import type { DnsConfig } from './dns-options.js'

/** One resolution: the members found, and a problem to report beside them (or instead, when there are none). */
export interface Resolution {
  members: UpstreamOptions[]
  problem: Error | undefined
}

/**
 * Answers that say "no such records" rather than "no answer": NXDOMAIN (ENOTFOUND)
 * and NOERROR with an empty answer section (ENODATA). Anything else (ETIMEOUT,
 * ESERVFAIL, ECONNREFUSED, EREFUSED…) means the question went unanswered.
 */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA'])

/**
 * Resolves the configured name into the full, sorted member list. Throws an
 * AffinityError (DNS_FAILED or DNS_EMPTY) when the round yields no trustworthy list.
 */
export async function resolveMembers (resolver: dns.Resolver, config: DnsConfig): Promise<Resolution> {
  if (config.mode === 'srv') return srvMembers(resolver, config)
  const { addresses, codes } = await addressesOf(resolver, config.name)
  if (addresses.length === 0) throw new AffinityError('AFFINITY_ERR_DNS_EMPTY', config.name, 'A or AAAA records', codes)
  const members = addresses.map(a => {
    const id = hostPort(a, config.port)
    return { id, url: `${config.protocol}://${id}`, weight: 1 }
  })
  return { members, problem: undefined }
}

/**
 * The A and AAAA records of `host`, asked in parallel: IPv4 first, then IPv6, each in
 * numeric order, so that every instance lists the same addresses in the same order
 * whatever order the server rotated them into. A family without records is simply absent; a family whose
 * lookup failed fails the whole round, since keeping only the other family's members
 * would turn a DNS hiccup into a membership change. `codes` says why both are empty.
 */
async function addressesOf (resolver: dns.Resolver, host: string): Promise<{ addresses: string[], codes: string }> {
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)])
  const a = settled(v4, 'A', host)
  const aaaa = settled(v6, 'AAAA', host)
  const ipv4 = [...new Set(a.records)].sort((x, y) => ipv4Number(x) - ipv4Number(y))
  const ipv6 = [...new Set(aaaa.records)].map(a => [ipv6Key(a), a]).sort(([x], [y]) => ordinal(x!, y!)).map(([, a]) => a!)
  return { addresses: [...ipv4, ...ipv6], codes: `A: ${a.code}, AAAA: ${aaaa.code}` }
}

function settled (r: PromiseSettledResult<string[]>, rrtype: string, host: string): { records: string[], code: string } {
  if (r.status === 'fulfilled') return { records: r.value, code: r.value.length === 0 ? 'ENODATA' : 'NOERROR' }
  const code = String((r.reason as NodeJS.ErrnoException).code)
  if (NO_RECORDS.has(code)) return { records: [], code }
  throw dnsFailed(rrtype, host, r.reason)
}

/**
 * SRV (RFC 2782), one member per record, id `target:port`:
 * - Only the lowest priority present is used: RFC 2782 clients "MUST attempt to contact
 *   the target host with the lowest-numbered priority it can reach", and the others
 *   are fallbacks for when none of those can be reached, a health-driven choice this
 *   balancer does not make from DNS (nginx's `service=` makes them `backup` servers,
 *   which Affinity has no equivalent of). Health checks and passive ejection handle
 *   unreachable members within the priority.
 * - Weight: RFC 2782 weights are relative shares within a priority, exactly what a
 *   balancer weight is, so they are used as such, with two adjustments. Weight 0
 *   ("a very small chance of being selected" beside others) counts as 1, the smallest
 *   share DNS can express, since balancer weights are > 0; all-zero records are then
 *   equal. Weights are divided by their greatest common divisor, so only ratios
 *   matter: CoreDNS weighs each of a service's n records ⌊100 / n⌋ (its
 *   plugin/backend_lookup.go), so without this every member's weight would change
 *   on every scale-up (33 each for 3 pods, 25 each for 4: 1 each here). Records with the same target and port add their weights (RFC 2782's
 *   selection would send that sum of traffic there).
 * - A target of "." means the service is decidedly not available there (RFC 2782).
 * - The URL needs an address, and it must come from the same resolvers (a custom
 *   `servers` list is not what undici's own lookups would ask), so each distinct
 *   target's A/AAAA records are resolved here. A target with several addresses uses
 *   the first in the order above (lowest IPv4 first): the choice must be the same on
 *   every instance and across polls, or URLs would flap. A target without addresses
 *   is left out and reported; a failed target lookup fails the round.
 */
async function srvMembers (resolver: dns.Resolver, config: DnsConfig): Promise<Resolution> {
  let records: SrvRecord[]
  try {
    records = await resolver.resolveSrv(config.name)
  } catch (err) {
    const code = String((err as NodeJS.ErrnoException).code)
    if (NO_RECORDS.has(code)) throw new AffinityError('AFFINITY_ERR_DNS_EMPTY', config.name, 'SRV records', code)
    throw dnsFailed('SRV', config.name, err)
  }
  const usable = records.filter(r => r.name !== '' && r.name !== '.')
  if (usable.length === 0) throw new AffinityError('AFFINITY_ERR_DNS_EMPTY', config.name, 'SRV records', records.length === 0 ? 'ENODATA' : 'only target "."')
  const lowest = Math.min(...usable.map(r => r.priority))
  const byId = new Map<string, { target: string, port: number, weight: number }>()
  for (const r of usable) {
    if (r.priority !== lowest) continue
    // DNS names are case-insensitive and a resolver may vary the case (0x20 randomisation): one spelling for ids.
    const target = r.name.toLowerCase().replace(/\.$/, '')
    const id = `${target}:${r.port}`
    const entry = byId.get(id)
    if (entry === undefined) byId.set(id, { target, port: r.port, weight: Math.max(r.weight, 1) })
    else entry.weight += Math.max(r.weight, 1)
  }

  const targets = [...new Set([...byId.values()].map(e => e.target))].sort(ordinal)
  const lookups = await Promise.allSettled(targets.map(t => addressesOf(resolver, t)))
  const address = new Map<string, string>()
  const missing: string[] = []
  for (let i = 0; i < targets.length; i++) {
    const r = lookups[i]!
    if (r.status === 'rejected') throw r.reason // the first failed target, in name order
    if (r.value.addresses.length > 0) address.set(targets[i]!, r.value.addresses[0]!)
    else missing.push(`${targets[i]} (${r.value.codes})`)
  }
  const found = [...byId].filter(([, e]) => address.has(e.target)).sort(([x], [y]) => ordinal(x, y))
  if (found.length === 0) throw new AffinityError('AFFINITY_ERR_DNS_EMPTY', config.name, 'SRV target with an address', missing.join(', '))
  const divisor = found.reduce((g, [, e]) => gcd(g, e.weight), 0)
  const members = found.map(([id, e]) => ({
    id,
    url: `${config.protocol}://${hostPort(address.get(e.target)!, e.port)}`,
    weight: e.weight / divisor,
  }))
  const problem = missing.length === 0 ? undefined : new AffinityError('AFFINITY_ERR_DNS_SRV_TARGET', config.name, missing.join(', '))
  return { members, problem }
}

function dnsFailed (rrtype: string, host: string, cause: unknown): AffinityError {
  const err = new AffinityError('AFFINITY_ERR_DNS_FAILED', rrtype, host, String((cause as NodeJS.ErrnoException).code ?? cause))
  err.cause = cause
  return err
}

/** `address:port`, IPv6 in brackets (RFC 3986 §3.2.2), as both the id and the URL's authority. */
function hostPort (address: string, port: number): string {
  return isIPv4(address) ? `${address}:${port}` : `[${address}]:${port}`
}

function ipv4Number (a: string): number {
  return a.split('.').reduce((n, octet) => n * 256 + Number(octet), 0)
}

/** Eight 4-digit hex groups: their text order is the numeric order (`::1` before `2001:db8::9` before `2001:db8::10`). */
function ipv6Key (a: string): string {
  let text = a
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text) // ::ffff:192.0.2.1 (RFC 4291 §2.2)
  if (v4 !== null) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number) as [number, number, number, number]
    text = text.slice(0, v4.index) + `${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
  return groups.map(g => g.padStart(4, '0')).join(':')
}

/** Code-unit order: the same on every machine, unlike localeCompare. */
function ordinal (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function gcd (a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}
