/**
 * A fixed consistent-hash lookup table, built once per membership change (Maglev).
 * `slot(hash)` maps a key hash to a position; `owner[position]` is the index (in
 * `Members.all`) of the upstream that owns it.
 */
export interface HashTable {
  readonly size: number
  /** Owner of each position: an index into `Members.all`. */
  readonly owner: Int32Array
  slot (hash: number): number
}

/**
 * What ConsistentHash picks from, whichever the algorithm: positions in ring (or
 * table) order, each resolved to its first eligible owner, so the successor walk,
 * the health overlay and bounded loads are written once for both (as Envoy's
 * HashingLoadBalancer implements only chooseHost(hash, attempt) per policy).
 * The Ring (ring.ts) is one, kept up to date per change; a Maglev table with its
 * resolved array (ResolvedTable below) is the other.
 */
export interface Placement<T> {
  /** Positions: ring points, or table entries. */
  readonly size: number
  /** The position a key hash lands on (only when size > 0). */
  slot (hash: number): number
  /** The position after `pos`, wrapping. */
  next (pos: number): number
  /** First eligible owner at or after `pos`: code × 2 + (successor ? 1 : 0), or -1. */
  resolved (pos: number): number
  /** The member of each code (`resolved(pos) >> 1`). */
  readonly owners: ReadonlyArray<T | undefined>
}

/** A HashTable with its successors resolved for one health snapshot. */
export class ResolvedTable<T> implements Placement<T> {
  readonly size: number
  readonly owners: ReadonlyArray<T | undefined>
  readonly #table: HashTable
  readonly #resolved: Int32Array

  constructor (table: HashTable, eligible: Uint8Array, owners: readonly T[]) {
    this.size = table.size
    this.owners = owners
    this.#table = table
    this.#resolved = resolveEligible(table, eligible)
  }

  slot (hash: number): number {
    return this.#table.slot(hash)
  }

  next (pos: number): number {
    return pos + 1 === this.size ? 0 : pos + 1
  }

  resolved (pos: number): number {
    return this.#resolved[pos]!
  }
}

/**
 * For every position, the first eligible owner at or after it walking forward
 * (wrapping), encoded as `owner × 2 + (successor ? 1 : 0)`, or -1 when nothing is
 * eligible. Built in O(size) on every membership or health change (65,537 entries
 * by default: ≈ 0.2 ms), so the per-request pick reads one array entry even when
 * the key's own upstream is down; every instance computes the same successor.
 */
export function resolveEligible (table: HashTable, eligible: Uint8Array): Int32Array {
  const { size, owner } = table
  const out = new Int32Array(size).fill(-1)
  let next = -1
  // Two backward passes cover the wrap-around: the first finds the successor of the
  // tail (which lies at the start), the second fills every position.
  for (let pass = 0; pass < 2; pass++) {
    for (let i = size - 1; i >= 0; i--) {
      const o = owner[i]!
      if (eligible[o] === 1) next = o
      out[i] = next === -1 ? -1 : next * 2 + (next === o ? 0 : 1)
    }
    if (next === -1) break
  }
  return out
}

/**
 * Entries a key's walk reads before `firstEligible` resolves the whole table
 * instead. With a share f of entries eligible a walk reads 1/f on average, so a
 * key past this many means few are eligible, where one O(size) pass is cheaper
 * than the walks of every key to come.
 */
const WALK = 64

/**
 * A key hash → the index of its first eligible owner (what resolveEligible gives
 * its slot, without the successor bit), or -1. Walks the table from the key's slot
 * and resolves every entry only once a walk gets long: a deferred remap looks up
 * 4,096 keys against 65,537 entries, so resolving the two tables it compares cost
 * more than all its lookups (an O(size) pass and a 256 KiB array each, in a
 * slice that cannot be interrupted; bench/membership.js, hashMaglev+bf).
 */
export function firstEligible (table: HashTable, eligible: Uint8Array): (hash: number) => number {
  const { size, owner } = table
  let resolved: Int32Array | undefined
  return (hash) => {
    if (resolved === undefined) {
      let pos = table.slot(hash)
      for (let k = 0; k < WALK; k++) {
        const o = owner[pos]!
        if (o !== -1 && eligible[o] === 1) return o
        pos = pos + 1 === size ? 0 : pos + 1
      }
      resolved = resolveEligible(table, eligible)
    }
    const r = resolved[table.slot(hash)]!
    return r === -1 ? -1 : r >> 1
  }
}
