import { invalidOption } from '../errors.js'
import { ipHashOf } from '../keys/ip.js'
import type { Strategy } from './strategy.js'
import { ConsistentHash } from './consistent-hash.js'

export interface IpPrefixOptions {
  /** Bits of an IPv4 address that identify a client (32: the whole address). */
  ipv4Prefix?: number
  /** Bits of an IPv6 address that identify a client (64: privacy addresses rotate inside a /64). */
  ipv6Prefix?: number
}

export function checkPrefixes (opts: IpPrefixOptions): { ipv4Prefix: number, ipv6Prefix: number } {
  const ipv4Prefix = opts.ipv4Prefix ?? 32
  const ipv6Prefix = opts.ipv6Prefix ?? 64
  if (!Number.isInteger(ipv4Prefix) || ipv4Prefix < 0 || ipv4Prefix > 32) throw invalidOption('ipv4Prefix', 'expected an integer from 0 to 32')
  if (!Number.isInteger(ipv6Prefix) || ipv6Prefix < 0 || ipv6Prefix > 128) throw invalidOption('ipv6Prefix', 'expected an integer from 0 to 128')
  return { ipv4Prefix, ipv6Prefix }
}

/**
 * Affinity by client address with no state: the normalised address (IPv4-mapped
 * IPv6 folded, masked to the prefix) hashed on a consistent-hash ring. Unlike
 * nginx's ip_hash (a modulo over the first three octets), adding or removing a
 * server moves only ≈1/N of clients, and every instance agrees.
 * A request with no usable address goes round robin.
 */
export function ipHash (opts: IpPrefixOptions = {}): Strategy {
  const { ipv4Prefix, ipv6Prefix } = checkPrefixes(opts)
  return new ConsistentHash({ key: () => undefined }, 'ipHash', req => ipHashOf(req.ip, ipv4Prefix, ipv6Prefix))
}
