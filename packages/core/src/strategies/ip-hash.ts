import { checkPrefixes, ipHashOf, type IpPrefixOptions } from '../keys/ip.js'
import { knownKeys, optionsObject } from '../options.js'
import { ConsistentHash, hashConfig } from './consistent-hash.js'
import type { Strategy } from './strategy.js'

export type { IpPrefixOptions } from '../keys/ip.js'

/**
 * Affinity by client address with no state: the normalised address (IPv4-mapped
 * IPv6 folded, masked to the prefix) hashed on a consistent-hash ring. Unlike
 * nginx's ip_hash (a modulo over the first three octets), adding or removing a
 * server moves only ≈1/N of clients, and every instance agrees.
 * A request with no usable address goes round robin.
 */
export function ipHash (opts: IpPrefixOptions = {}): Strategy {
  knownKeys('ipHash', optionsObject('ipHash', opts), ['ipv4Prefix', 'ipv6Prefix'])
  const { ipv4Prefix, ipv6Prefix } = checkPrefixes(opts)
  return new ConsistentHash('ipHash', hashConfig({}), req => ipHashOf(req.ip, ipv4Prefix, ipv6Prefix))
}
