import { LRUCache } from 'lru-cache'
import { invalidOption } from '../errors.js'

/**
 * A stick table: client key → upstream id with a TTL. Any method may return a
 * promise (a shared store such as Redis); the in-memory default never does, so
 * strategies stay synchronous unless the user plugs in an asynchronous store.
 */
export interface StickStore {
  get (key: string): string | undefined | Promise<string | undefined>
  set (key: string, upstreamId: string, ttlMs: number): void | Promise<void>
  delete (key: string): void | Promise<void>
  /** Live entries per upstream id, for stats (optional: a shared store may not know cheaply). */
  count? (): ReadonlyMap<string, number>
}

export interface MemoryStickStoreOptions {
  /** Entries kept at most; the least recently refreshed go first (HAProxy stick-table `size`). */
  maxEntries?: number
}

/**
 * Bounded in-memory stick table on lru-cache: every hit refreshes an entry's TTL
 * and recency, a full table evicts the least recently refreshed client, and
 * expired entries are dropped when read. A hit costs ≈0.2 µs at 10,000 clients
 * and stays flat as the table grows (bench/strategies.js, stickyIp rows).
 */
export function memoryStickStore (opts: MemoryStickStoreOptions = {}): StickStore & { readonly size: number } {
  const max = opts.maxEntries ?? 100_000
  if (!Number.isInteger(max) || max < 1) throw invalidOption('maxEntries', 'expected a whole number ≥ 1')
  const cache = new LRUCache<string, string>({ max, ttlAutopurge: false })
  return {
    get size () { return cache.size },
    get: (key) => cache.get(key),
    set: (key, upstreamId, ttlMs) => { cache.set(key, upstreamId, { ttl: ttlMs }) },
    delete: (key) => { cache.delete(key) },
    count: () => {
      const counts = new Map<string, number>()
      cache.forEach((id) => { counts.set(id, (counts.get(id) ?? 0) + 1) })
      return counts
    },
  }
}
