import { LRUCache } from 'lru-cache'
import { knownKeys, optionsObject, wholeNumber } from '../options.js'
import type { StickStore, StickTableStats } from './store.js'

export interface MemoryStickStoreOptions {
  /** Entries kept at most; the least recently refreshed go first (HAProxy stick-table `size`). */
  maxEntries?: number
}

/** Expired entries are swept out of the live counts at most this often (and at most every ttl / 8). */
const SWEEP_MS = 5000

/**
 * Bounded in-memory stick table on lru-cache: every hit refreshes an entry's TTL
 * and recency, a full table evicts the least recently refreshed client, and
 * expired entries are dropped when read. A hit costs ≈0.2 µs at 10,000 clients
 * and stays flat as the table grows (bench/strategies.js, stickyIp rows).
 *
 * Entries per upstream are counted as they come and go, through lru-cache's
 * `onInsert` (added, or re-bound to another upstream) and `dispose` (replaced,
 * evicted, deleted, expired) callbacks, so `boundLive()` is a map read, not a scan.
 * An expired entry leaves the counts when lru-cache drops it: when it is read, or
 * at the sweep (`purgeStale`, O(entries)) that `boundLive()` runs at most every
 * min(5 s, ttl / 8) and `bound()` runs every time. The sweep rides on the reads
 * instead of an unref'd timer: the counts are only needed when read, and a store
 * nobody reads costs nothing and holds no timer.
 *
 * A full table evicts its least recently refreshed client before that client's TTL:
 * the client loses its binding without a word, so evictions are counted (`table()`,
 * stats().store.evicted) and reported to `onEvict` listeners (the balancer's
 * 'pressure' event, logged once a minute at most).
 */
export function memoryStickStore (opts: MemoryStickStoreOptions = {}): StickStore & { readonly size: number } {
  knownKeys('memoryStickStore', optionsObject('memoryStickStore', opts), ['maxEntries'])
  const max = wholeNumber('maxEntries', opts.maxEntries, 100_000, 1)
  const counts = new Map<string, number>()
  const up = (id: string): void => { counts.set(id, (counts.get(id) ?? 0) + 1) }
  const down = (id: string): void => {
    const n = (counts.get(id) ?? 0) - 1
    if (n > 0) counts.set(id, n)
    else counts.delete(id)
  }
  let evicted = 0
  const listeners: Array<() => void> = []
  const cache = new LRUCache<string, string>({
    max,
    ttlAutopurge: false,
    // 'update' (a refresh of the same binding, on every sticky hit) changes nothing.
    onInsert: (id, _key, reason) => { if (reason !== 'update') up(id) },
    dispose: (id, key, reason) => {
      down(id)
      // lru-cache evicts the least recent entry whether or not it has expired (its
      // #evict): only one still within its TTL lost a live binding.
      if (reason === 'evict' && cache.getRemainingTTL(key) > 0) {
        evicted++
        for (const l of listeners) l()
      }
    },
  })
  let sweepEvery = SWEEP_MS
  let swept = performance.now()
  const sweep = (): void => {
    swept = performance.now()
    cache.purgeStale()
  }
  return {
    get size () { return cache.size },
    get: (key) => cache.get(key),
    set: (key, upstreamId, ttlMs) => {
      if (ttlMs < sweepEvery * 8) sweepEvery = ttlMs / 8
      cache.set(key, upstreamId, { ttl: ttlMs })
    },
    delete: (key) => { cache.delete(key) },
    bound: () => {
      sweep()
      return new Map(counts)
    },
    boundLive: () => {
      if (performance.now() - swept >= sweepEvery) sweep()
      return counts
    },
    table: (): StickTableStats => ({ entries: cache.size, maxEntries: max, evicted }),
    onEvict: (listener) => { listeners.push(listener) },
  }
}
