/** What a counted user carries: the bucket it was last counted in (-1: never) and under which upstream id. */
export interface SeenStamp {
  bucket: number
  upstream: string
}

/** Buckets per window: a user stays counted for between windowMs and windowMs × 9/8 after it was last seen. */
const BUCKETS = 8

/**
 * Distinct users seen within a sliding window, per upstream, kept incrementally:
 * the window is cut into BUCKETS time buckets (plus the current one), each user is
 * counted once, in the bucket it was last seen in, and a bucket's counts leave the
 * totals when it slides out. A returning user seen again within its bucket costs
 * two comparisons; once per bucket it moves to the current one. Reading the
 * per-upstream totals is a map read, so a session cap can consult them on every
 * new placement (stickyCookie: there is no table to count, only cookies that come
 * back).
 */
export class RecentUsers {
  readonly #width: number
  readonly #slots = new Map<string, Int32Array>()
  readonly #live = new Map<string, number>()
  /** The current bucket (absolute: ⌊ms / width⌋) and when it ends. */
  #bucket = -1
  #end = -Infinity

  constructor (windowMs: number) {
    this.#width = windowMs / BUCKETS
  }

  /** `entry`'s user was seen now on upstream `id`. */
  touch (entry: SeenStamp, id: string, now: number): void {
    const b = now < this.#end ? this.#bucket : this.#advance(now)
    if (entry.bucket === b && entry.upstream === id) return
    this.forget(entry)
    let slots = this.#slots.get(id)
    if (slots === undefined) {
      slots = new Int32Array(BUCKETS + 1)
      this.#slots.set(id, slots)
    }
    slots[b % (BUCKETS + 1)]!++
    this.#live.set(id, (this.#live.get(id) ?? 0) + 1)
    entry.bucket = b
    entry.upstream = id
  }

  /** `entry`'s user no longer counts (it moved, its cookie expired, or it was forgotten). */
  forget (entry: SeenStamp): void {
    // Still counted while its bucket has not slid out of the window.
    if (entry.bucket === -1 || entry.bucket <= this.#bucket - (BUCKETS + 1)) return
    const slots = this.#slots.get(entry.upstream)
    const i = entry.bucket % (BUCKETS + 1)
    if (slots !== undefined && slots[i]! > 0) {
      slots[i]!--
      this.#live.set(entry.upstream, this.#live.get(entry.upstream)! - 1)
    }
    entry.bucket = -1
  }

  /** Users per upstream id seen within the window (a live map: read it, do not keep it). */
  counts (now: number): ReadonlyMap<string, number> {
    if (now >= this.#end) this.#advance(now)
    return this.#live
  }

  /** Moves to the bucket of `now`, dropping the counts of buckets that slid out. */
  #advance (now: number): number {
    const b = Math.floor(now / this.#width)
    if (b <= this.#bucket) return this.#bucket
    const n = BUCKETS + 1
    // Buckets this.#bucket - BUCKETS … b - n leave the window: at most n slots to clear.
    const from = Math.max(this.#bucket - BUCKETS, b - 2 * n + 1)
    for (let x = from; x <= b - n; x++) {
      const i = ((x % n) + n) % n
      for (const [id, slots] of this.#slots) {
        if (slots[i] === 0) continue
        this.#live.set(id, this.#live.get(id)! - slots[i]!)
        slots[i] = 0
      }
    }
    this.#bucket = b
    this.#end = (b + 1) * this.#width
    return b
  }
}
