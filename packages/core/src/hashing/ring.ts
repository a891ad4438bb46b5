import { bitsFor } from './bucket-sizing.js'
import { NEVER, type Deadline } from './deadline.js'
import { PointStore } from './point-store.js'
import { sortByPoint } from './radix.js'
import { idBytes, pointCounts, pointOf, type RingMember } from './ring-points.js'
import { becameEligible, becameIneligible, insertEntry, removeEntry } from './successors.js'

const EMPTY = new Uint8Array(0)

/**
 * Whether 2^bits buckets no longer suit `size` points: outside 0.5 to 4 points a
 * bucket (bitsFor aims at 1 to 2; 16 bits stay at any size above). E.g. 16,384
 * buckets suit 8,192 to 65,535 points; 30,000 + 3,000 stays, 70,000 moves to 2^16.
 */
function relayout (bits: number, size: number): boolean {
  const want = bitsFor(size)
  return want < bits - 1 || (want > bits + 1 && bits < 16)
}

/** Points moved between two looks at the deadline. */
const STEP = 64

/**
 * Rings smaller than this apply a change within the call: at 3,000 points per
 * upstream that is ≈ 350 upstreams, where a change costs a few ms (p99 ≤ 5 ms at
 * 100 upstreams, `npm run bench:membership`); from this size on, in slices.
 */
export const SLICE_FROM = 1 << 20

/** One upstream's points going in or out, in ascending order, `at` of them done. */
interface Move {
  readonly code: number
  readonly points: Uint32Array
  readonly insert: boolean
  /** The upstream's count once every point has moved. */
  readonly to: number
  at: number
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
 *
 * At fleet scale (SLICE_FROM points and up) that difference is applied in slices:
 * `sync` does what fits before its deadline and `work` the rest, on later turns of
 * the event loop, so no change blocks it for long (3,000 points an upstream at
 * 1,000 upstreams: ≈ 3 ms of moves per change; `npm run bench:membership`). The
 * ring answers correctly meanwhile: an upstream that left or went down is skipped
 * at once (`resolved` checks the membership as synced, and walks on past it), an
 * upstream added or back up takes its keys as its points go in. The answers are
 * those of a ring built from scratch once the work is done.
 */
export class Ring<T extends RingMember> {
  readonly #vnodes: number
  readonly #sliceFrom: number
  readonly #store: PointStore
  /** Per owner code, as applied: id ('' when free), points held, eligibility, UTF-8 id. */
  readonly #ids: string[] = []
  readonly #bytes: Uint8Array[] = []
  readonly #counts: number[] = []
  #eligible = new Uint8Array(64)
  /** Per owner code, as synced: the member (undefined once it left), points wanted, whether it takes keys. */
  readonly #owners: Array<T | undefined> = []
  readonly #wanted: number[] = []
  #live = new Uint8Array(64)
  readonly #codeOf = new Map<string, number>()
  readonly #freeCodes: number[] = []
  /** Entries whose owner is eligible: removing the last one empties every successor. */
  #eligibleEntries = 0
  /** Codes whose applied state may differ from the synced one, in the order to apply them; `work` is at #cursor. */
  #dirty: number[] = []
  #cursor = 0
  #move: Move | undefined
  /** Work remains: picks check the synced membership (`resolved`). */
  #busy = false

  /** `sliceFrom`: the ring size (points) from which a change may be applied in slices. */
  constructor (vnodes: number, sliceFrom = SLICE_FROM) {
    this.#vnodes = vnodes
    this.#sliceFrom = sliceFrom
    const ids = this.#ids
    this.#store = new PointStore((a, b) => ids[a]! < ids[b]!)
  }

  /** Entries on the ring. */
  get size (): number {
    return this.#store.size
  }

  /** The member of each owner code (`resolved(pos) >> 1`); holes where a code is free or its upstream left. */
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

  /** Whether a change is still being applied (`work` continues it). */
  get busy (): boolean {
    return this.#busy
  }

  /** The position of the first entry at or after `hash` (wrapping). Only when size > 0. */
  slot (hash: number): number {
    return this.#store.slot(hash)
  }

  next (pos: number): number {
    return this.#store.next(pos)
  }

  /**
   * First eligible owner at or after `pos`: code × 2 + (successor ? 1 : 0), or -1
   * (successors.ts). While a change is being applied, an owner that left or went
   * down is passed over here, walking on to the first entry of one that takes keys
   * (its arcs only: the other entries' codes are right).
   */
  resolved (pos: number): number {
    const r = this.#store.resolved(pos)
    if (!this.#busy || (r !== -1 && this.#live[r >> 1] === 1)) return r
    const store = this.#store
    for (let k = 0, p = pos; k < store.size; k++, p = store.next(p)) {
      const o = store.owner(p)
      if (this.#live[o] === 1) return o * 2 + (p === pos ? 0 : 1)
    }
    return -1
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
   * balancer's first membership, mass changes), in O(points), within the call.
   * With `later`, on a ring of `sliceFrom` points or more, only takes the change
   * in and returns true: `work` applies it, in slices. Otherwise it is applied here.
   */
  sync (all: readonly T[], eligible: Uint8Array, later = false): boolean {
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
      this.#move = undefined
      this.#dirty = []
      this.#cursor = 0
      this.#rebuild(all, counts, codes, leaving, eligible)
      this.#busy = false
      return false
    }
    // What takes keys first (ups, additions, growth), then what gives them up; a
    // member that left or went down is skipped by `resolved` from now on anyway.
    const first: number[] = []
    const then: number[] = []
    all.forEach((u, i) => {
      let code = codes[i]!
      if (code === -1) code = codes[i] = this.#newCode(u.id, eligible[i] === 1)
      this.#owners[code] = u
      this.#wanted[code] = counts[i]!
      this.#live[code] = eligible[i]!
      const held = this.#counts[code]!
      if (this.#eligible[code] !== eligible[i] || held !== counts[i] || this.#move?.code === code) {
        (eligible[i] === 1 && (this.#eligible[code] === 0 || counts[i]! > held) ? first : then).push(code)
      }
    })
    for (const code of leaving) {
      this.#owners[code] = undefined
      this.#wanted[code] = 0
      this.#live[code] = 0
      then.push(code)
    }
    this.#dirty = first.concat(then)
    this.#cursor = 0
    this.#busy = true
    return later && this.#store.size >= this.#sliceFrom ? true : this.work()
  }

  /**
   * Applies what `sync` left, until `deadline`, having made some progress first
   * (a code's eligibility, or STEP points); returns true when work remains.
   */
  work (deadline: Deadline = NEVER): boolean {
    if (!this.#busy) return false
    for (let first = true; ; first = false) {
      if (this.#move !== undefined && !this.#moveOn(deadline)) return true
      if (this.#cursor === this.#dirty.length) break
      if (!first && deadline()) return true
      this.#plan(this.#dirty[this.#cursor++]!)
    }
    this.#dirty = []
    this.#cursor = 0
    this.#busy = false
    // The bucket count follows the size (below 2^16 buckets), within a band so that
    // an upstream coming and going at a boundary does not lay the ring out each time;
    // a pool eight times what it holds (the fleet shrank to an eighth) is compacted.
    // Both are O(size) copies, no sort, and rare (bits change only below 2^17 points).
    const size = this.#store.size
    if (relayout(this.#store.bits, size) || (this.#store.capacity > 8 * size && this.#store.capacity > 1 << 19)) {
      const e = this.#store.export()
      this.#store.load(e.points, e.owners, e.resolved, size, bitsFor(size))
    }
    return false
  }

  /** Every entry in ring order: points, owner ids, resolved owner ids and whether each is a successor (tests, benchmarks). */
  snapshot (): { points: Uint32Array, owners: string[], resolved: Array<string | undefined>, successor: boolean[] } {
    this.work()
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
      this.#owners[code] = u
      this.#counts[code] = this.#wanted[code] = counts[i]!
      this.#eligible[code] = this.#live[code] = eligible[i]!
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
   * The next step for one code towards its synced state: its eligibility first
   * (all its entries at once: successors.ts keeps every entry right between such
   * steps), then a Move of its points in or out, or freeing the code once its
   * upstream left and its points are gone.
   */
  #plan (code: number): void {
    const want = this.#wanted[code]!
    const held = this.#counts[code]!
    if (want > 0 && this.#eligible[code] !== this.#live[code]) this.#setEligible([code], this.#live[code] === 1)
    if (held !== want) {
      // Seeds [held, want) in, or [want, held) out. In ascending order, consecutive
      // points land in neighbouring buckets: the directory and the regions are walked
      // front to back instead of at random (≈ 2× faster at 3 M points).
      this.#move = { code, points: this.#points(code, Math.min(held, want), Math.max(held, want)), insert: want > held, to: want, at: 0 }
    } else if (want === 0 && this.#ids[code] !== '') {
      this.#freeCode(code)
    }
  }

  /** Moves points of the current Move until it is done (true) or the deadline (false). */
  #moveOn (deadline: Deadline): boolean {
    const m = this.#move!
    const { code, points } = m
    const eligible = this.#eligible
    const store = this.#store
    while (m.at < points.length) {
      const stop = Math.min(points.length, m.at + STEP)
      if (m.insert) {
        for (; m.at < stop; m.at++) this.#eligibleEntries += insertEntry(store, eligible, points[m.at]!, code)
      } else {
        for (; m.at < stop; m.at++) {
          const last = eligible[code] === 1 && this.#eligibleEntries === 1
          this.#eligibleEntries -= removeEntry(store, eligible, store.find(points[m.at]!, code), last)
        }
      }
      if (m.at < points.length && deadline()) return false
    }
    this.#counts[code] = m.to
    this.#move = undefined
    if (m.to === 0 && this.#wanted[code] === 0) this.#freeCode(code)
    else if (this.#counts[code] !== this.#wanted[code] || this.#eligible[code] !== this.#live[code]) this.#dirty.push(code)
    return true
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
    const positions = new Int32Array(total)
    for (let k = 0; k < total; k++) positions[k] = this.#store.find(points[k]!, owners[k]!)
    if (on) becameEligible(this.#store, this.#eligible, positions)
    else becameIneligible(this.#store, this.#eligible, positions)
  }

  /** A code for a new upstream (a freed one first), with no points yet. */
  #newCode (id: string, eligible: boolean): number {
    const code = this.#freeCodes.pop() ?? this.#ids.length
    if (code >= this.#eligible.length) {
      this.#eligible = grown(this.#eligible)
      this.#live = grown(this.#live)
    }
    this.#ids[code] = id
    this.#bytes[code] = idBytes(id)
    this.#counts[code] = this.#wanted[code] = 0
    this.#eligible[code] = this.#live[code] = eligible ? 1 : 0
    this.#codeOf.set(id, code)
    return code
  }

  /** Frees a code whose points are gone (or are about to be, by a rebuild). */
  #freeCode (code: number): void {
    this.#codeOf.delete(this.#ids[code]!)
    this.#ids[code] = ''
    this.#bytes[code] = EMPTY
    this.#counts[code] = this.#wanted[code] = 0
    this.#eligible[code] = this.#live[code] = 0
    this.#owners[code] = undefined
    this.#freeCodes.push(code)
  }
}

function grown (flags: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const to = new Uint8Array(flags.length * 2)
  to.set(flags)
  return to
}
