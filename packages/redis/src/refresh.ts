/** Read hints waiting for their `set` at most (a hit whose set never comes: no upstream to place on). */
const MAX_PENDING = 10_000
/** Keys whose last write this instance remembers at most (without GETEX); the oldest go first. */
const MAX_WRITTEN = 100_000

/** Whole milliseconds ≥ 1, as PX takes them. */
export const px = (ttlMs: number): number => Math.max(1, Math.ceil(ttlMs))

function take (map: Map<string, string>, key: string): string | undefined {
  const v = map.get(key)
  if (v !== undefined) map.delete(key)
  return v
}

/**
 * When a sticky hit needs a Redis write. stickyIp reads a binding (`get`) and, on a hit,
 * writes it back (`set`, same upstream, its TTL) to keep an active client bound: naively a
 * GET and a SET PX, two round trips per request. Instead:
 *
 * - Redis ≥ 6.2 (GETEX, detected once per connection with COMMAND INFO): the read is
 *   `GETEX key PX ttl`, which refreshes the TTL as it reads, and the `set` that follows a
 *   hit with the same upstream writes nothing. One round trip per sticky hit.
 * - Older servers (or GETEX renamed away): a plain GET, and the `set` after a hit goes to
 *   Redis only once half the TTL has passed since this instance last wrote the key, the
 *   way stickyCookie renews its cookie (and a session store its expiry) only past half
 *   its life. Between two writes the key keeps ≥ ttl/2 to live, so an idle client stays
 *   bound for between ttl/2 and ttl after its last request instead of exactly ttl.
 *
 * The TTL is learned from the first `set` (stickyIp always passes its own); until then a
 * read is a plain GET. A `set` is skipped only right after a read that Redis answered with
 * the same upstream: a key Redis lost, or one another instance moved, is written as before.
 */
export class Refresh {
  /** Whether the server has GETEX; false until the detection answered. */
  getex = false
  /** The TTL the strategy writes with. */
  #ttl: number | undefined
  /** key → upstream id a GETEX returned (its TTL is full again), until the `set` that follows. */
  readonly #refreshed = new Map<string, string>()
  /** key → upstream id a plain GET returned, until the `set` that follows. */
  readonly #read = new Map<string, string>()
  /** key → when (performance.now()) this instance last wrote it, in write order (without GETEX). */
  readonly #written = new Map<string, number>()

  /** The PX a read refreshes the key to (GETEX), or undefined: a plain GET. */
  readTtl (): number | undefined {
    return this.getex && this.#ttl !== undefined ? px(this.#ttl) : undefined
  }

  /** Redis answered a read of `key` with `id`; `refreshed`: by GETEX. */
  hit (key: string, id: string, refreshed: boolean): void {
    const pending = refreshed ? this.#refreshed : this.#read
    if (pending.size >= MAX_PENDING) pending.clear()
    pending.set(key, id)
  }

  /** Whether `set(key, id, ttlMs)` has to go to Redis; consumes the hint of the read before it. */
  mustWrite (key: string, id: string, ttlMs: number, now: number): boolean {
    const refreshed = take(this.#refreshed, key)
    const read = take(this.#read, key)
    if (ttlMs !== this.#ttl) {
      this.#ttl = ttlMs
      return true
    }
    if (refreshed === id) return false
    if (read !== id) return true
    const at = this.#written.get(key)
    return at === undefined || now - at >= ttlMs / 2
  }

  /** `key` was written to Redis at `now`: the half-TTL clock (kept only without GETEX). */
  wrote (key: string, now: number): void {
    if (this.getex) return
    this.#written.delete(key)
    if (this.#written.size >= MAX_WRITTEN) this.#written.delete(this.#written.keys().next().value!)
    this.#written.set(key, now)
  }

  forget (key: string): void {
    this.#refreshed.delete(key)
    this.#read.delete(key)
    this.#written.delete(key)
  }
}
