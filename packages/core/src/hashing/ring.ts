import { murmur3Bytes } from './murmur3.js'
import { bitsFor } from './bucket-sizing.js'
import { PointStore } from './point-store.js'
import { sortByPoint } from './radix.js'
import { becameEligible, becameIneligible, insertEntry, removeEntry } from './successors.js'

const MAX_POINTS = 1 << 22
const utf8 = new TextEncoder()
const EMPTY = new Uint8Array(0)

/**
 * Seed j's point of an upstream: murmur3(id, j) (murmur3.ts), computed over the
 * id's UTF-8 bytes encoded once per upstream: ≈ 5× faster than re-encoding the
 * string for each of its thousands of seeds, and the same value.
 */
/**
 * Points per unit of weight. A node's share of the ring is a sum of V random arcs,
 * so its spread shrinks as 1/√V: 3,000 keeps the busiest upstream's key-space share
 * under 1.05× the mean at N = 10 and near 1.06× at N = 100 (bench/strategies.js),
 * where nginx's 160 points measure 1.13–1.26. A point costs 12 bytes, ≈ 13.4 with
 * the room its bucket keeps to grow (1,000 upstreams; bench/strategies.js, build).
 */
export const DEFAULT_VNODES = 3000
export function pointOf (bytes: Uint8Array, seed: number): number {
  return murmur3Bytes(bytes, bytes.length, seed)
}

/** An id's UTF-8 bytes, as murmur3 hashes them (lone surrogates as U+FFFD, like TextEncoder). */
export function idBytes (id: string): Uint8Array {
  return utf8.encode(id)
}

/**
 * Whether 2^bits buckets no longer suit `size` points: outside 0.5 to 4 points a
 * bucket (bitsFor aims at 1 to 2; 16 bits stay at any size above). E.g. 16,384
 * buckets suit 8,192 to 65,535 points; 30,000 + 3,000 stays, 70,000 moves to 2^16.
 */
function relayout (bits: number, size: number): boolean {
  const want = bitsFor(size)
  return want < bits - 1 || (want > bits + 1 && bits < 16)
}

/** What the ring needs of an upstream. */
export interface RingMember {
  readonly id: string
  readonly weight: number
}

/**
 * Points per upstream, in `all`'s order: round(vnodes × weight), at least 1. Past
 * MAX_POINTS (large weights × many upstreams) every count is scaled down alike, as
 * Envoy's maximum_ring_size does; below it a count depends only on its own weight.
 * The sum runs in `all`'s order (sorted by id), so every instance rounds alike.
 */
export function pointCounts (all: readonly RingMember[], vnodes: number): Int32Array {
  let wanted = 0
  for (const u of all) wanted += vnodes * u.weight
  const scale = wanted > MAX_POINTS ? MAX_POINTS / wanted : 1
  const counts = new Int32Array(all.length)
  for (let i = 0; i < all.length; i++) counts[i] = Math.max(1, Math.round(vnodes * all[i]!.weight * scale))
  return counts
}

/**
 * Consistent-hash ring with virtual nodes (Karger et al., STOC 1997, "Consistent
 * hashing and random trees"). An upstream with count c owns the points
 * murmur3(id, seed = j) for j < c; a key belongs to the first point clockwise of its
 * hash, equal points ordered by id. Points depend only on (id, count), never on
 * list order, so adding or removing one upstream moves only the keys on its arcs,
 * and every instance with the same members builds the same ring.
 *
 * Kept up to date by `sync`, which applies only the difference from the previous
 * membership: an upstream added or removed inserts or removes its own points (a
 * weight change only the seeds between its old and new counts), each in time
 * proportional to its bucket (point-store.ts), and an upstream going down, up or
 * draining rewrites only the successors that change (successors.ts). Owners are
 * small integer codes that stay put while the upstream stays, so nothing is
 * renumbered when another one comes or goes.
 */
export class Ring<T extends RingMember> {
  readonly #vnodes: number
  readonly #store: PointStore
  /** Per owner code: id ('' when free), points held, eligibility, the member itself. */
  readonly #ids: string[] = []
  readonly #bytes: Uint8Array[] = []
  readonly #counts: number[] = []
  #eligible = new Uint8Array(64)
  readonly #owners: Array<T | undefined> = []
  readonly #codeOf = new Map<string, number>()
  readonly #freeCodes: number[] = []
  /** Entries whose owner is eligible: removing the last one empties every successor. */
  #eligibleEntries = 0

  constructor (vnodes: number) {
    this.#vnodes = vnodes
    const ids = this.#ids
    this.#store = new PointStore((a, b) => ids[a]! < ids[b]!)
  }

  /** Entries on the ring. */
  get size (): number {
    return this.#store.size
  }

  /** The member of each owner code (`resolved(pos) >> 1`); holes where a code is free. */
  get owners (): ReadonlyArray<T | undefined> {
    return this.#owners
  }

  /** Memory held by the points (point-store.ts: slack per bucket included). */
  get bytes (): number {
    return this.#store.bytes
  }

  /** One past the highest owner code in use (sizes a per-code array). */
  get codeLimit (): number {
    return this.#ids.length
  }

  /** The position of the first entry at or after `hash` (wrapping). Only when size > 0. */
  slot (hash: number): number {
    return this.#store.slot(hash)
  }

  next (pos: number): number {
    return this.#store.next(pos)
  }

  /** First eligible owner at or after `pos`: code × 2 + (successor ? 1 : 0), or -1 (successors.ts). */
  resolved (pos: number): number {
    return this.#store.resolved(pos)
  }

  point (pos: number): number {
    return this.#store.point(pos)
  }

  /** Owner code of the entry at `pos`. */
  owner (pos: number): number {
    return this.#store.owner(pos)
  }

  codeOf (id: string): number | undefined {
    return this.#codeOf.get(id)
  }

  idOf (code: number): string {
    return this.#ids[code]!
  }

  countOf (code: number): number {
    return this.#counts[code]!
  }

  /**
   * Brings the ring to membership `all` (sorted by id, as Members.all) where
   * `eligible[i]` says whether all[i] takes new keys. Called on every membership or
   * health change (ConsistentHash.update); the result equals a ring built from
   * scratch for `all`. Costs O(|all|) plus, per point that comes or goes, its
   * bucket; a change of more than half the points is rebuilt instead (the
   * balancer's first membership, mass changes), in O(points).
   */
  sync (all: readonly T[], eligible: Uint8Array): void {
    const counts = pointCounts(all, this.#vnodes)
    const codes = new Int32Array(all.length)
    const present = new Uint8Array(this.#ids.length)
    let changed = 0
    all.forEach((u, i) => {
      const code = this.#codeOf.get(u.id) ?? -1
      codes[i] = code
      if (code === -1) changed += counts[i]!
      else {
        present[code] = 1
        changed += Math.abs(counts[i]! - this.#counts[code]!)
      }
    })
    const leaving: number[] = []
    this.#ids.forEach((id, code) => {
      if (id !== '' && present[code] === 0) {
        leaving.push(code)
        changed += this.#counts[code]!
      }
    })
    if (changed * 2 > this.#store.size) {
      this.#rebuild(all, counts, codes, leaving, eligible)
    } else {
      // Health first, on the entries as they are; then removals, resizes, additions.
      const down: number[] = []
      const up: number[] = []
      all.forEach((u, i) => {
        const code = codes[i]!
        if (code !== -1 && this.#eligible[code] !== eligible[i]) (eligible[i] === 1 ? up : down).push(code)
      })
      if (down.length > 0) this.#setEligible(down, false)
      if (up.length > 0) this.#setEligible(up, true)
      for (const code of leaving) {
        this.#resize(code, 0)
        this.#freeCode(code)
      }
      all.forEach((u, i) => {
        if (codes[i] !== -1) this.#resize(codes[i]!, counts[i]!)
        else {
          const code = this.#newCode(u.id, eligible[i] === 1)
          codes[i] = code
          this.#resize(code, counts[i]!)
        }
      })
      // The bucket count follows the size (below 2^16 buckets), within a band so that
      // an upstream coming and going at a boundary does not lay the ring out each time;
      // a pool eight times what it holds (the fleet shrank to an eighth) is compacted.
      // Both are O(size) copies, no sort, and rare (bits change only below 2^17 points).
      const size = this.#store.size
      if (relayout(this.#store.bits, size) || (this.#store.capacity > 8 * size && this.#store.capacity > 1 << 19)) {
        const e = this.#store.export()
        this.#store.load(e.points, e.owners, e.resolved, size, bitsFor(size))
      }
    }
    all.forEach((u, i) => { this.#owners[codes[i]!] = u })
  }

  /** Every entry in ring order: points, owner ids, resolved owner ids and whether each is a successor (tests, benchmarks). */
  snapshot (): { points: Uint32Array, owners: string[], resolved: Array<string | undefined>, successor: boolean[] } {
    const e = this.#store.export()
    return {
      points: e.points,
      owners: Array.from(e.owners, c => this.#ids[c]!),
      resolved: Array.from(e.resolved, r => (r === -1 ? undefined : this.#ids[r >> 1])),
      successor: Array.from(e.resolved, r => r !== -1 && (r & 1) === 1),
    }
  }

  /** Everything from scratch: codes kept for those staying, every point hashed, one layout, one successor pass. */
  #rebuild (all: readonly T[], counts: Int32Array, codes: Int32Array, leaving: readonly number[], eligible: Uint8Array): void {
    for (const code of leaving) this.#freeCode(code)
    let total = 0
    for (const c of counts) total += c
    const points = new Uint32Array(total)
    const owners = new Int32Array(total)
    let n = 0
    this.#eligibleEntries = 0
    all.forEach((u, i) => {
      const code = codes[i] !== -1 ? codes[i]! : this.#newCode(u.id, false)
      codes[i] = code
      this.#counts[code] = counts[i]!
      this.#eligible[code] = eligible[i]!
      if (eligible[i] === 1) this.#eligibleEntries += counts[i]!
      const bytes = this.#bytes[code]!
      for (let j = 0; j < counts[i]!; j++) {
        points[n] = pointOf(bytes, j)
        owners[n++] = code
      }
    })
    this.#store.load(points, owners, undefined, total, bitsFor(total))
    this.#store.resolveAll(this.#eligible)
  }

  /**
   * Seeds [held, count) in, or [count, held) out. The points go in ascending order,
   * so consecutive ones land in neighbouring buckets: the directory and the regions
   * are walked front to back instead of at random (≈ 2× faster at 3 M points).
   */
  #resize (code: number, count: number): void {
    const held = this.#counts[code]!
    if (count === held) return
    const points = this.#points(code, Math.min(held, count), Math.max(held, count))
    const eligible = this.#eligible
    const store = this.#store
    if (count > held) {
      for (const p of points) this.#eligibleEntries += insertEntry(store, eligible, p, code)
    } else {
      for (const p of points) {
        const last = eligible[code] === 1 && this.#eligibleEntries === 1
        this.#eligibleEntries -= removeEntry(store, eligible, store.find(p, code), last)
      }
    }
    this.#counts[code] = count
  }

  /** The points of seeds [from, to) of an owner, sorted. */
  #points (code: number, from: number, to: number): Uint32Array {
    const bytes = this.#bytes[code]!
    const points = new Uint32Array(to - from)
    for (let j = from; j < to; j++) points[j - from] = pointOf(bytes, j)
    return points.sort()
  }

  /**
   * Owners `codes` (in id order) become eligible or not, together: their flags
   * first, then their entries' successors in one pass (successors.ts). When that
   * would touch a quarter of the ring or more (a panic-mode switch; the first
   * upstream up when none was), every successor is resolved afresh instead, in one
   * O(size) pass without a lookup per point.
   */
  #setEligible (codes: readonly number[], on: boolean): void {
    const before = this.#eligibleEntries
    let total = 0
    for (const code of codes) {
      total += this.#counts[code]!
      this.#eligible[code] = on ? 1 : 0
    }
    this.#eligibleEntries += on ? total : -total
    if (this.#eligibleEntries === 0) return this.#store.fillResolved(-1)
    if (before === 0 || total * 4 >= this.#store.size) return this.#store.resolveAll(this.#eligible)
    // Their points in ring order: a stable sort keeps equal points in id order.
    const points = new Uint32Array(total)
    const owners = new Int32Array(total)
    let n = 0
    for (const code of codes) {
      const bytes = this.#bytes[code]!
      for (let j = 0; j < this.#counts[code]!; j++) {
        points[n] = pointOf(bytes, j)
        owners[n++] = code
      }
    }
    sortByPoint(points, owners, total)
    const positions = Array.from(points, (p, k) => this.#store.find(p, owners[k]!))
    if (on) becameEligible(this.#store, this.#eligible, positions)
    else becameIneligible(this.#store, this.#eligible, positions)
  }

  /** A code for a new upstream (a freed one first), with no points yet. */
  #newCode (id: string, eligible: boolean): number {
    const code = this.#freeCodes.pop() ?? this.#ids.length
    if (code >= this.#eligible.length) {
      const grown = new Uint8Array(this.#eligible.length * 2)
      grown.set(this.#eligible)
      this.#eligible = grown
    }
    this.#ids[code] = id
    this.#bytes[code] = idBytes(id)
    this.#counts[code] = 0
    this.#eligible[code] = eligible ? 1 : 0
    this.#codeOf.set(id, code)
    return code
  }

  /** Frees a code whose points are gone (or are about to be, by a rebuild). */
  #freeCode (code: number): void {
    this.#codeOf.delete(this.#ids[code]!)
    this.#ids[code] = ''
    this.#bytes[code] = EMPTY
    this.#counts[code] = 0
    this.#eligible[code] = 0
    this.#owners[code] = undefined
    this.#freeCodes.push(code)
  }
}
