import { memoryStickStore } from '../stick/memory-store.js'
import { consistentHash } from '../strategies/consistent-hash.js'
import { ipHash } from '../strategies/ip-hash.js'
import { leastConnections } from '../strategies/least-connections.js'
import { roundRobin } from '../strategies/round-robin.js'
import { stickyCookie } from '../strategies/sticky-cookie.js'
import { stickyIp } from '../strategies/sticky-ip.js'
import type { Strategy } from '../strategies/strategy.js'
import { DEFAULT_MAGLEV_SIZE } from '../hashing/maglev.js'
import { DEFAULT_VNODES } from '../hashing/ring-points.js'
import { cookieUsers, headerUsers, ipClients, sequentialRequests, USER_HEADER, type Population } from './population.js'
import { thousands } from '../render/format.js'

export const STRATEGY_NAMES = ['roundRobin', 'leastConnections', 'stickyCookie', 'stickyIp', 'consistentHash', 'ipHash'] as const
export type StrategyName = typeof STRATEGY_NAMES[number]

/** consistentHash's options that change placement (the simulator's `--algorithm`, `--balance-factor`…). */
export interface HashSettings {
  algorithm?: 'ring' | 'maglev'
  balanceFactor?: number
  vnodes?: number
  tableSize?: number
}

/**
 * The cookies are signed and read back inside this process only; the secret has
 * no bearing on placement (the tag names the upstream, the nonce is random).
 */
const SIMULATION_SECRET = 'affinity-simulate-fixed-secret: cookies never leave this process'

/** `consistenthash`, `consistent-hash`, `ip_hash`… → the factory's name; undefined when unknown. */
export function strategyName (input: string): StrategyName | undefined {
  const flat = input.replace(/[-_\s]/g, '').toLowerCase()
  return STRATEGY_NAMES.find(n => n.toLowerCase() === flat)
}

/**
 * A fresh instance of the real strategy, as a user would configure it: the
 * simulator runs the balancer's own code, never a model of it. A strategy serves
 * one balancer, so every scenario gets its own.
 */
export function createStrategy (name: StrategyName, hash: HashSettings, users: number): Strategy {
  switch (name) {
    case 'roundRobin': return roundRobin()
    case 'leastConnections': return leastConnections()
    case 'stickyCookie': return stickyCookie({ secret: SIMULATION_SECRET })
    // A stick table big enough for every simulated client, so no binding is evicted mid-run.
    case 'stickyIp': return stickyIp({ store: memoryStickStore({ maxEntries: Math.max(100_000, users) }) })
    case 'consistentHash': return consistentHash({ key: { header: USER_HEADER }, ...hash })
    case 'ipHash': return ipHash()
  }
}

/** Who sends the requests for this strategy (see population.ts). */
export function populationFor (name: StrategyName, size: number, seed: number): Population {
  switch (name) {
    case 'consistentHash': return headerUsers(size, seed)
    case 'ipHash':
    case 'stickyIp': return ipClients(size, seed)
    case 'stickyCookie': return cookieUsers(size)
    case 'roundRobin':
    case 'leastConnections': return sequentialRequests(size)
  }
}


/** One line naming the strategy and the options that shape placement. */
export function describeStrategy (name: StrategyName, hash: HashSettings): string {
  const ring = (vnodes: number): string => `ring, ${thousands(vnodes)} points per unit of weight`
  switch (name) {
    case 'roundRobin': return 'roundRobin (smooth weighted rotation)'
    case 'leastConnections': return 'leastConnections (fewest in flight per unit of weight, ties by weighted rotation)'
    case 'stickyCookie': return 'stickyCookie (new users placed by leastConnections)'
    case 'stickyIp': return 'stickyIp (stick table; new clients placed by leastConnections)'
    case 'ipHash': return `ipHash (${ring(DEFAULT_VNODES)})`
    case 'consistentHash': {
      const parts = [hash.algorithm === 'maglev'
        ? `maglev, table size ${thousands(hash.tableSize ?? DEFAULT_MAGLEV_SIZE)}`
        : ring(hash.vnodes ?? DEFAULT_VNODES)]
      if (hash.balanceFactor !== undefined) parts.push(`balance factor ${hash.balanceFactor}`)
      parts.push(`key: ${USER_HEADER} header`)
      return `consistentHash (${parts.join(', ')})`
    }
  }
}
