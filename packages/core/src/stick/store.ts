/**
 * A stick table: client key → upstream id with a TTL. Any method may return a
 * promise (a shared store such as Redis); the in-memory default never does, so
 * strategies stay synchronous unless the user plugs in an asynchronous store.
 */
export interface StickStore {
  get (key: string): string | undefined | Promise<string | undefined>
  set (key: string, upstreamId: string, ttlMs: number): void | Promise<void>
  delete (key: string): void | Promise<void>
  /** A shared store's health, for stats() and metrics (optional: the memory store has none). */
  stats? (): StickStoreStats
  /**
   * Unexpired entries per upstream id, exact (expired ones swept first): a copy, for
   * stats() and previews, never per request. Optional: a shared store may not know
   * cheaply.
   */
  bound? (): ReadonlyMap<string, number>
  /**
   * The same counts as a live map, kept up to date as entries come and go (expired
   * ones may linger a little, see memoryStickStore). Read on every new placement
   * under a session cap (stickyIp `sessionBalanceFactor`), so it must cost O(1).
   */
  boundLive? (): ReadonlyMap<string, number>
  /** A bounded in-memory table's fill and evictions, for stats() and metrics (optional). */
  table? (): StickTableStats
  /**
   * Calls `listener` whenever an entry is evicted before its TTL because the table
   * is full (those clients silently lose their binding): the balancer's 'pressure'
   * event. Optional: a store that never evicts early has none.
   */
  onEvict? (listener: () => void): void
}

/** A bounded in-memory stick table (memoryStickStore). */
export interface StickTableStats {
  /** Entries held now (expired ones may linger until read or swept). */
  entries: number
  maxEntries: number
  /** Entries evicted before their TTL because the table was full, since start. */
  evicted: number
}

/** `stats().store`: a shared store's health, an in-memory table's fill, or both. */
export interface StoreStats extends Partial<StickStoreStats>, Partial<StickTableStats> {}

/** What a shared stick store reports about its backend (see @affinity/redis). */
export interface StickStoreStats {
  /** Answering from a local fallback now: the backend is unavailable. */
  degraded: boolean
  /** Switches from the backend to the fallback so far. */
  outages: number
  /** Reads answered by the fallback because the backend was unavailable. */
  fallbackReads: number
  /** Backend commands that failed. */
  errors: number
  /** Backend commands that took longer than the store's timeout. */
  timeouts: number
}
