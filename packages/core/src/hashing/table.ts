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

/**
 * A HashTable with its successors resolved for one health snapshot: for every
 * position, the first eligible owner at or after it walking forward (wrapping),
 * `owner × 2 + (successor ? 1 : 0)`, or -1 when nothing is eligible; every instance
 * computes the same successor.
 *
 * Resolved lazily, on first read, and kept. Resolving all 65,537 entries at once on
 * every membership or health change took ≈ 0.9 ms where V8 had optimised the loop
 * (a further ≈ 0.7 ms of page faults to touch a fresh 256 KiB array on this VM), up
 * to 11 ms in V8's interpreter (`node --no-opt --no-sparkplug`; 3.9 ms with
 * baseline code only), within the change's call or a slice that cannot be
 * interrupted (a scratch timing of the previous build; every entry read here:
 * bench/strategies.js, build, "successors"). A read of an entry not
 * yet resolved walks forward to the first eligible owner or resolved entry and
 * resolves every entry on the way, all of which share that answer; no entry is
 * walked over twice. With every upstream eligible, a walk is one entry; with a
 * share f, ≈ 1/f, spread over the picks and remaps that read them.
 */
export class ResolvedTable<T> implements Placement<T> {
  readonly size: number
  readonly owners: ReadonlyArray<T | undefined>
  readonly #table: HashTable
  readonly #eligible: Uint8Array
  /** Each entry's code + 2; 0 until resolved, so the array is zero-filled memory, touched page by page as read. */
  readonly #resolved: Int32Array
  readonly #none: boolean

  constructor (table: HashTable, eligible: Uint8Array, owners: ReadonlyArray<T | undefined>) {
    this.size = table.size
    this.owners = owners
    this.#table = table
    this.#eligible = eligible
    this.#resolved = new Int32Array(table.size)
    this.#none = !eligible.includes(1)
  }

  slot (hash: number): number {
    return this.#table.slot(hash)
  }

  next (pos: number): number {
    return pos + 1 === this.size ? 0 : pos + 1
  }

  resolved (pos: number): number {
    const r = this.#resolved[pos]!
    return r !== 0 ? r - 2 : this.#walk(pos)
  }

  /** Resolves `pos` and every entry between it and its first eligible owner (or an entry already resolved). */
  #walk (pos: number): number {
    if (this.#none) return -1
    const { owner, size } = this.#table
    const eligible = this.#eligible
    const out = this.#resolved
    let at = pos
    let first: number
    for (let steps = 0; ; steps++) {
      // Resolved entries met here name an owner: -1 (1) is only ever written everywhere at once.
      const r = out[at]!
      if (r !== 0) {
        first = (r - 2) >> 1
        break
      }
      const o = owner[at]!
      if (eligible[o] === 1) {
        out[at] = o * 2 + 2
        first = o
        break
      }
      // Round the whole table: no eligible upstream owns an entry (an eligible id with none).
      if (steps === size) {
        out.fill(1)
        return -1
      }
      at = at + 1 === size ? 0 : at + 1
    }
    // The entries passed over are not `first`'s own: each resolves to it as their successor.
    const code = first * 2 + 3
    for (let p = pos; p !== at; p = p + 1 === size ? 0 : p + 1) out[p] = code
    return out[pos]! - 2
  }
}
