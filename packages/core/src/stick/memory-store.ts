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
}

export interface MemoryStickStoreOptions {
  /** Entries kept at most; the least recently refreshed go first (HAProxy stick-table `size`). */
  maxEntries?: number
}

interface Entry { id: string, expires: number }

/**
 * Bounded in-memory stick table. A Map keeps insertion order, and every hit
 * re-inserts its entry, so the front of the Map is always the least recently
 * refreshed entry: eviction and expiry sweeps pop from the front in O(1).
 */
class MemoryStickStore implements StickStore {
  readonly #map = new Map<string, Entry>()
  readonly #max: number

  constructor (opts: MemoryStickStoreOptions) {
    this.#max = opts.maxEntries ?? 100_000
    if (!Number.isInteger(this.#max) || this.#max < 1) throw invalidOption('maxEntries', 'expected a whole number ≥ 1')
  }

  get size (): number {
    return this.#map.size
  }

  get (key: string): string | undefined {
    const e = this.#map.get(key)
    if (e === undefined) return undefined
    if (e.expires <= Date.now()) {
      this.#map.delete(key)
      return undefined
    }
    return e.id
  }

  set (key: string, upstreamId: string, ttlMs: number): void {
    const now = Date.now()
    let e = this.#map.get(key)
    if (e === undefined) e = { id: upstreamId, expires: now + ttlMs }
    else {
      this.#map.delete(key)
      e.id = upstreamId
      e.expires = now + ttlMs
    }
    this.#map.set(key, e)
    // Sweep a couple of expired entries from the front on each write: amortised O(1),
    // and the table never holds more than `maxEntries`.
    for (let i = 0; i < 2 || this.#map.size > this.#max; i++) {
      const first = this.#map.entries().next()
      if (first.done === true) break
      const [k, v] = first.value
      if (this.#map.size <= this.#max && v.expires > now) break
      this.#map.delete(k)
    }
  }

  delete (key: string): void {
    this.#map.delete(key)
  }
}

export function memoryStickStore (opts: MemoryStickStoreOptions = {}): StickStore {
  return new MemoryStickStore(opts)
}
