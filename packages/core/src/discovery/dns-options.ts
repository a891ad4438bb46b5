import { isIP } from 'node:net'
import { AffinityError, invalidOption } from '../errors.js'

export interface DnsDiscoveryOptions {
  /** A name whose A and AAAA records are the members, one upstream per address (needs `port`). */
  name?: string
  /** The port every address of `name` serves on (A and AAAA records carry none). */
  port?: number
  /**
   * An SRV name (`_http._tcp.shop.default.svc.cluster.local`): one upstream per record of
   * the lowest priority, at the record's target and port. Instead of `name` and `port`.
   */
  srv?: string
  /** Scheme of the upstream URLs (default 'http'). */
  protocol?: 'http' | 'https'
  /** Time between the end of one resolution and the start of the next (default 5000 ms, Envoy's dns_refresh_rate). */
  intervalMs?: number
  /** Resolvers to ask, as `address` or `address:port` (`[v6]:port`); default: the system's (/etc/resolv.conf). */
  servers?: string[]
  /**
   * How long one attempt waits for an answer (default 1000 ms). Each query is sent
   * twice to each server, the second time with twice the timeout (c-ares's backoff),
   * so a silent server costs 3 × timeoutMs per query.
   */
  timeoutMs?: number
}

/** The checked options. */
export interface DnsConfig {
  readonly mode: 'address' | 'srv'
  /** The name to resolve: A/AAAA name or SRV name. */
  readonly name: string
  /** For A/AAAA; 0 for SRV (each record carries its port). */
  readonly port: number
  readonly protocol: 'http' | 'https'
  readonly intervalMs: number
  readonly servers: readonly string[] | undefined
  readonly timeoutMs: number
}

const KNOWN = ['name', 'port', 'srv', 'protocol', 'intervalMs', 'servers', 'timeoutMs'] as const
/** setTimeout fires at once for anything above 2^31 - 1 ms. */
const MAX_MS = 2 ** 31 - 1

/**
 * Checks `dnsDiscovery` options once, at construction: exactly one of `name` + `port`
 * or `srv`; unknown options are refused, never ignored (a misspelt `interval` would
 * otherwise silently re-resolve every 5 s).
 */
export function dnsConfig (opts: DnsDiscoveryOptions): DnsConfig {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) {
    throw invalidOption('dnsDiscovery', 'expected an options object with `name` and `port`, or `srv`')
  }
  for (const key of Object.keys(opts)) {
    if (!(KNOWN as readonly string[]).includes(key)) throw new AffinityError('AFFINITY_ERR_UNKNOWN_OPTION', key, 'dnsDiscovery', KNOWN.join(', '))
  }
  const { name, port, srv, protocol = 'http', intervalMs = 5000, servers, timeoutMs = 1000 } = opts

  let mode: DnsConfig['mode']
  if (srv !== undefined) {
    if (name !== undefined || port !== undefined) throw invalidOption('srv', 'give either `srv` (SRV records carry the port) or `name` with `port`, not both')
    checkHostname('srv', srv)
    mode = 'srv'
  } else {
    if (name === undefined) throw invalidOption('name', 'expected `name` with `port` (A and AAAA records) or `srv` (SRV records)')
    checkHostname('name', name)
    if (!Number.isInteger(port) || port! < 1 || port! > 65535) throw invalidOption('port', 'A and AAAA records carry no port: expected a whole number from 1 to 65535')
    mode = 'address'
  }
  if (protocol !== 'http' && protocol !== 'https') throw invalidOption('protocol', "expected 'http' or 'https'")
  if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs < 10 || intervalMs > MAX_MS) {
    throw invalidOption('intervalMs', `expected milliseconds from 10 to ${MAX_MS}`)
  }
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_MS) throw invalidOption('timeoutMs', `expected whole milliseconds from 1 to ${MAX_MS}`)
  return {
    mode,
    name: mode === 'srv' ? srv! : name!,
    port: mode === 'srv' ? 0 : port!,
    protocol,
    intervalMs,
    servers: servers === undefined ? undefined : checkServers(servers),
    timeoutMs,
  }
}

/** RFC 1035 §2.3.4 sizes (labels ≤ 63, name ≤ 253 as text); `_` is allowed for SRV labels (RFC 2782). */
function checkHostname (option: string, value: unknown): void {
  if (typeof value !== 'string' || value === '') throw invalidOption(option, 'expected a DNS name')
  if (isIP(value) !== 0) throw invalidOption(option, `${value} is an address, not a name: list fixed addresses in \`upstreams\` instead`)
  const bare = value.endsWith('.') ? value.slice(0, -1) : value
  if (bare.length > 253 || !bare.split('.').every(label => /^[A-Za-z0-9_-]{1,63}$/.test(label))) {
    throw invalidOption(option, `${JSON.stringify(value)} is not a DNS name (labels of letters, digits, '-' or '_', at most 63 characters each)`)
  }
}

/** `address`, `v4:port` or `[v6]:port`, as Node's `setServers` reads them (which would wrap a port above 65535). */
function checkServers (servers: unknown): string[] {
  const why = 'expected a non-empty array of resolver addresses such as "10.96.0.10", "10.96.0.10:53" or "[fd00::a]:53"'
  if (!Array.isArray(servers) || servers.length === 0) throw invalidOption('servers', why)
  for (const s of servers as unknown[]) {
    if (typeof s !== 'string') throw invalidOption('servers', why)
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([\d.]+):(\d+)$/.exec(s)
    const address = m === null ? s : m[1]!
    const port = m?.[2] === undefined ? 53 : Number(m[2])
    const family = isIP(address)
    if (family === 0 || (m !== null && s.startsWith('[') !== (family === 6)) || !(port >= 1 && port <= 65535)) {
      throw invalidOption('servers', `${JSON.stringify(s)} is not a resolver address: ${why}`)
    }
  }
  return [...servers as string[]]
}
