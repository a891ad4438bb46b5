/**
 * The ring's points, sorted, in a layout where one point goes in or out in time
 * proportional to its bucket (≈ 46 points at 1,000 upstreams × 3,000 vnodes), not
 * to the ring (3 M points): a 1,000-upstream ring used to be re-sorted whole on
 * every add or remove (≈ 0.8 s of blocked event loop; `npm run bench:membership`).
 *
 * Layout. The 32-bit hash space is cut into 2^bits buckets by the top bits of a
 * point, as the former flat ring's prefix index did (bits = ⌊log2 size⌋, 1 to 16,
 * so a bucket holds one to a few dozen points). Each bucket keeps its points sorted
 * in a region of its own with some room to grow; a region that fills up moves to a
 * larger one (entry-pool.ts hands out the regions, in chunks that never move).
 *
 * An entry is a point (a key hash), an owner code (the caller's small integer for
 * an upstream) and a resolved code (the caller's payload, see successors.ts): 12
 * bytes, as before, plus the room regions keep.
 *
 * Order: by point, then by owner as `ownerBefore` says (the ring orders equal
 * points by upstream id, so every instance builds the same ring).
 */
import { CHUNK_BITS, EntryPool, IN_CHUNK } from './entry-pool.js'
import { capacityFor } from './bucket-sizing.js'
import { sortByPoint } from './radix.js'

/** Directory fields per bucket: region start, end (exclusive), next bucket's first position, capacity. */
const START = 0
const END = 1
const AFTER = 2
const CAP = 3

export class PointStore {
  #bits = 1
  #shift = 31
  /** Per bucket, four Int32 fields (START, END, AFTER, CAP): 16 bytes, four buckets a cache line. */
  #dir = new Int32Array(8)
  readonly #pool = new EntryPool()
  /** The pool's chunk lists, read directly on the per-pick path. */
  readonly #points = this.#pool.points
  readonly #owners = this.#pool.owners
  readonly #resolved = this.#pool.resolved
  #size = 0
  readonly #ownerBefore: (a: number, b: number) => boolean

  /** `ownerBefore(a, b)`: whether owner a comes first among entries with equal points. */
  constructor (ownerBefore: (a: number, b: number) => boolean) {
    this.#ownerBefore = ownerBefore
    this.#reset(1)
  }

  get size (): number {
    return this.#size
  }

  get bits (): number {
    return this.#bits
  }

  /** Entries the chunks can hold: what compaction (Ring.sync) compares `size` with. */
  get capacity (): number {
    return this.#pool.capacity
  }

  /** Memory held: 12 bytes per entry of every chunk, 16 per bucket. */
  get bytes (): number {
    return this.capacity * 12 + this.#dir.byteLength
  }

  /**
   * The first entry at or after `hash`, wrapping past the top to the first entry:
   * a lower-bound binary search within the hash's bucket, else the next non-empty
   * bucket's first entry (AFTER). Only when size > 0. The per-pick path.
   */
  slot (hash: number): number {
    const d = this.#dir
    const i = (hash >>> this.#shift) << 2
    const start = d[i]!
    const end = d[i + END]!
    if (start === end) return d[i + AFTER]!
    const points = this.#points[start >>> CHUNK_BITS]!
    const base = start - (start & IN_CHUNK)
    let lo = start & IN_CHUNK
    const stop = end - base
    let hi = stop
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (points[mid]! < hash) lo = mid + 1
      else hi = mid
    }
    return lo === stop ? d[i + AFTER]! : base + lo
  }

  point (pos: number): number {
    return this.#points[pos >>> CHUNK_BITS]![pos & IN_CHUNK]!
  }

  owner (pos: number): number {
    return this.#owners[pos >>> CHUNK_BITS]![pos & IN_CHUNK]!
  }

  resolved (pos: number): number {
    return this.#resolved[pos >>> CHUNK_BITS]![pos & IN_CHUNK]!
  }

  setResolved (pos: number, code: number): void {
    this.#resolved[pos >>> CHUNK_BITS]![pos & IN_CHUNK] = code
  }

  /** The entry after `pos` in ring order, wrapping (`pos` itself when it is the only one). */
  next (pos: number): number {
    const i = (this.point(pos) >>> this.#shift) << 2
    return pos + 1 < this.#dir[i + END]! ? pos + 1 : this.#dir[i + AFTER]!
  }

  /** The entry before `pos` in ring order, wrapping: past empty buckets, at most one lap. */
  prev (pos: number): number {
    const d = this.#dir
    const b = this.point(pos) >>> this.#shift
    if (pos > d[b << 2]!) return pos - 1
    const mask = (1 << this.#bits) - 1
    for (let k = 1; k <= mask + 1; k++) {
      const i = ((b - k) & mask) << 2
      if (d[i]! !== d[i + END]!) return d[i + END]! - 1
    }
    return pos
  }

  /** The first entry in ring order (lowest point), or -1 when empty. */
  first (): number {
    if (this.#size === 0) return -1
    const d = this.#dir
    return d[START]! !== d[END]! ? d[START]! : d[AFTER]!
  }

  /** The position of an entry (point, owner), or -1. Equal entries are interchangeable: any one. */
  find (point: number, owner: number): number {
    const d = this.#dir
    const i = (point >>> this.#shift) << 2
    const end = d[i + END]!
    for (let p = this.#lowerBound(d[i]!, end, point); p < end && this.point(p) === point; p++) {
      if (this.owner(p) === owner) return p
    }
    return -1
  }

  /**
   * Puts one entry in its place and returns its position. Moves at most its bucket's
   * entries (within the region, or the whole bucket to a larger region); positions
   * of other entries in the same bucket change, of all other entries not.
   */
  insert (point: number, owner: number, resolved: number): number {
    const d = this.#dir
    const b = point >>> this.#shift
    const i = b << 2
    let start = d[i]!
    let end = d[i + END]!
    const wasEmpty = start === end
    let moved = false
    if (end - start === d[i + CAP]!) {
      this.#relocate(b, capacityFor(end - start + 1))
      start = d[i]!
      end = d[i + END]!
      moved = true
    }
    // After the entries with a smaller point, and equal points whose owner comes first.
    let at = this.#lowerBound(start, end, point)
    while (at < end && this.point(at) === point && this.#ownerBefore(this.owner(at), owner)) at++
    this.#pool.shift(at, end, 1)
    this.#pool.write(at, point, owner, resolved)
    d[i + END] = end + 1
    this.#size++
    if (wasEmpty || moved) this.#linkBefore(b)
    return at
  }

  /**
   * Takes out the entry at `pos`; returns the position of the entry that followed
   * it (after the shift), or -1 when none is left.
   */
  remove (pos: number): number {
    const d = this.#dir
    const b = this.point(pos) >>> this.#shift
    const i = b << 2
    const start = d[i]!
    const end = d[i + END]!
    this.#pool.shift(pos + 1, end, -1)
    d[i + END] = end - 1
    this.#size--
    if (this.#size === 0) return -1
    if (end - 1 === start) this.#linkBefore(b) // now empty: those pointing at it skip it
    return pos < end - 1 ? pos : d[i + AFTER]!
  }

  /**
   * Replaces everything with `n` entries, laid out for 2^bits buckets: what a full
   * rebuild and a re-layout use, O(n). Entries come either in ring order (`resolved`
   * given: a re-layout), or in any order but with equal points in owner order
   * (`resolved` absent, then -1: a rebuild, which lists upstreams by id), sorted
   * here by a stable radix sort, in place. Then each bucket's entries are copied
   * into a region of their own, in order.
   */
  load (points: Uint32Array, owners: Int32Array, resolved: Int32Array | undefined, n: number, bits: number): void {
    if (resolved === undefined) sortByPoint(points, owners, n)
    this.#reset(bits)
    const buckets = 1 << bits
    const shift = this.#shift
    const d = this.#dir
    const count = new Int32Array(buckets)
    for (let k = 0; k < n; k++) count[points[k]! >>> shift]!++
    let room = 0
    for (let b = 0; b < buckets; b++) room += count[b] === 0 ? 0 : capacityFor(count[b]!)
    // Sorted input: bucket after bucket, each copied into its region in one loop.
    let k = 0
    for (let b = 0; b < buckets; b++) {
      if (count[b] === 0) continue
      const cap = capacityFor(count[b]!)
      room -= cap
      const start = this.#pool.alloc(cap, room)
      const i = b << 2
      d[i] = start
      d[i + END] = start + count[b]!
      d[i + CAP] = cap
      const c = start >>> CHUNK_BITS
      const toPoints = this.#points[c]!
      const toOwners = this.#owners[c]!
      const toResolved = this.#resolved[c]!
      for (let j = start & IN_CHUNK, stop = k + count[b]!; k < stop; k++, j++) {
        toPoints[j] = points[k]!
        toOwners[j] = owners[k]!
        toResolved[j] = resolved === undefined ? -1 : resolved[k]!
      }
    }
    this.#size = n
    // AFTER: one backward pass for the first non-empty bucket of each, a second for the wrap.
    let next = -1
    for (let pass = 0; pass < 2; pass++) {
      for (let b = buckets - 1; b >= 0; b--) {
        const i = b << 2
        d[i + AFTER] = next
        if (d[i]! !== d[i + END]!) next = d[i]!
      }
    }
  }

  /** Every entry in ring order into three new arrays (for a re-layout or a test's comparison). */
  export (): { points: Uint32Array, owners: Int32Array, resolved: Int32Array } {
    const n = this.#size
    const points = new Uint32Array(n)
    const owners = new Int32Array(n)
    const resolved = new Int32Array(n)
    const d = this.#dir
    let k = 0
    for (let b = 0; b < 1 << this.#bits; b++) {
      const start = d[b << 2]!
      const end = d[(b << 2) + END]!
      if (start === end) continue
      const c = start >>> CHUNK_BITS
      const fromPoints = this.#points[c]!
      const fromOwners = this.#owners[c]!
      const fromResolved = this.#resolved[c]!
      for (let j = start & IN_CHUNK, stop = k + end - start; k < stop; k++, j++) {
        points[k] = fromPoints[j]!
        owners[k] = fromOwners[j]!
        resolved[k] = fromResolved[j]!
      }
    }
    return { points, owners, resolved }
  }

  /**
   * Every entry's resolved code from scratch, by successors.ts's rule (its first
   * eligible owner clockwise), in two backward laps over the buckets (the first
   * finds what the tail wraps to): O(size) in tight loops, for a rebuild or a
   * change that flips much of the ring.
   */
  resolveAll (eligible: Uint8Array): void {
    const d = this.#dir
    let next = -1
    for (let lap = 0; lap < 2; lap++) {
      for (let b = (1 << this.#bits) - 1; b >= 0; b--) {
        const start = d[b << 2]!
        const end = d[(b << 2) + END]!
        if (start === end) continue
        const c = start >>> CHUNK_BITS
        const owners = this.#owners[c]!
        const resolved = this.#resolved[c]!
        const from = start & IN_CHUNK
        for (let j = from + end - start - 1; j >= from; j--) {
          const o = owners[j]!
          if (eligible[o] === 1) next = o
          resolved[j] = next === -1 ? -1 : next * 2 + (next === o ? 0 : 1)
        }
      }
      if (next === -1) return
    }
  }

  /** Sets every entry's resolved code (no upstream eligible: all -1). */
  fillResolved (code: number): void {
    for (const r of this.#resolved) r.fill(code)
  }

  /** Empty, with 2^bits empty buckets and no chunks. */
  #reset (bits: number): void {
    this.#bits = bits
    this.#shift = 32 - bits
    this.#dir = new Int32Array((1 << bits) << 2)
    this.#pool.clear()
    this.#size = 0
  }

  /** First position in [start, end) (one region, so one chunk) whose point is ≥ `point` (end if none). */
  #lowerBound (start: number, end: number, point: number): number {
    if (start === end) return end
    const points = this.#points[start >>> CHUNK_BITS]!
    const base = start - (start & IN_CHUNK)
    let lo = start - base
    let hi = end - base
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (points[mid]! < point) lo = mid + 1
      else hi = mid
    }
    return base + lo
  }

  /** Moves bucket b's entries to a new region of `cap` and frees the old one. */
  #relocate (b: number, cap: number): void {
    const d = this.#dir
    const i = b << 2
    const start = d[i]!
    const count = d[i + END]! - start
    const to = this.#pool.alloc(cap)
    if (count > 0) this.#pool.copy(start, to, count)
    if (d[i + CAP]! > 0) this.#pool.release(start, d[i + CAP]!)
    d[i] = to
    d[i + END] = to + count
    d[i + CAP] = cap
  }

  /**
   * After bucket b's first entry moved, appeared or went away: the buckets before it
   * that are empty, and the first non-empty one before them, now continue at b's
   * first entry (or, b being empty, wherever b continued).
   */
  #linkBefore (b: number): void {
    const d = this.#dir
    const i = b << 2
    const target = d[i]! !== d[i + END]! ? d[i]! : d[i + AFTER]!
    const mask = (1 << this.#bits) - 1
    for (let k = 1; k <= mask + 1; k++) {
      const j = ((b - k) & mask) << 2
      d[j + AFTER] = target
      if (d[j]! !== d[j + END]!) return
    }
  }
}
