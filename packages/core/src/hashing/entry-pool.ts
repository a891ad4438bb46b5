/**
 * Where the ring's entries live (point-store.ts arranges them): three parallel
 * typed arrays per chunk — point (a key hash), owner code, resolved code — 12 bytes
 * an entry. A position is chunk × CHUNK + index within the chunk. Entries are
 * handed out in regions (one per bucket) that never span two chunks, so the pool
 * grows by adding a chunk, never by copying what it holds; only the last chunk is
 * grown (doubling, up to CHUNK), so a small ring holds little more than its
 * entries. A region given back goes to a free list for its capacity and is handed
 * out again before the pool grows.
 */
export const CHUNK_BITS = 16
export const CHUNK = 1 << CHUNK_BITS
export const IN_CHUNK = CHUNK - 1

export class EntryPool {
  /**
   * Per chunk. The lists themselves stay (a reader may keep them); the arrays in
   * them are replaced when the last chunk grows, so read them through the lists.
   */
  readonly points: Uint32Array[] = []
  readonly owners: Int32Array[] = []
  readonly resolved: Int32Array[] = []
  /** Where the next fresh region starts (a position), and free regions by capacity / 2. */
  #tail = 0
  readonly #free: number[][] = []

  /** Entries the chunks can hold. */
  get capacity (): number {
    let n = 0
    for (const c of this.points) n += c.length
    return n
  }

  /** Empty: no chunk, no free region. */
  clear (): void {
    this.points.length = 0
    this.owners.length = 0
    this.resolved.length = 0
    this.#tail = 0
    this.#free.length = 0
  }

  /**
   * A region of `cap` entries (even, ≤ CHUNK): a freed one of that size, else the
   * pool's end, in a new chunk when it does not fit in the last one. `room`: the
   * entries a bulk load will still ask for, so its chunks are made long enough at
   * once instead of doubling.
   */
  alloc (cap: number, room = 0): number {
    if (cap > CHUNK) throw new Error(`ring bucket of ${cap} points: more than a chunk (${CHUNK}); murmur3 spreads points evenly, so this means a broken hash`)
    const reuse = this.#free[cap >> 1]?.pop()
    if (reuse !== undefined) return reuse
    if ((this.#tail >>> CHUNK_BITS) >= this.points.length || (this.#tail & IN_CHUNK) + cap > CHUNK) {
      this.#tail = this.points.length << CHUNK_BITS
      this.points.push(new Uint32Array(0))
      this.owners.push(new Int32Array(0))
      this.resolved.push(new Int32Array(0))
    }
    const start = this.#tail
    this.#tail += cap
    const c = start >>> CHUNK_BITS
    const need = ((this.#tail - 1) & IN_CHUNK) + 1
    if (this.points[c]!.length < need) {
      const length = Math.min(CHUNK, Math.max(need + room, 2 * this.points[c]!.length, 1024))
      this.points[c] = grown(this.points[c]!, new Uint32Array(length))
      this.owners[c] = grown(this.owners[c]!, new Int32Array(length))
      this.resolved[c] = grown(this.resolved[c]!, new Int32Array(length))
    }
    return start
  }

  /** Gives back the region at `start` of `cap` entries (its entries are dead). */
  release (start: number, cap: number): void {
    (this.#free[cap >> 1] ??= []).push(start)
  }

  /** Copies `count` entries from the region at `from` to the region at `to`. */
  copy (from: number, to: number, count: number): void {
    const c = from >>> CHUNK_BITS
    const f = from & IN_CHUNK
    const tc = to >>> CHUNK_BITS
    const t = to & IN_CHUNK
    this.points[tc]!.set(this.points[c]!.subarray(f, f + count), t)
    this.owners[tc]!.set(this.owners[c]!.subarray(f, f + count), t)
    this.resolved[tc]!.set(this.resolved[c]!.subarray(f, f + count), t)
  }

  /**
   * Moves the entries at [from, end) of one region by one place: up (`by` 1, to
   * open a gap at `from`; the region must have room) or down (`by` -1, over the
   * entry at `from` - 1).
   */
  shift (from: number, end: number, by: 1 | -1): void {
    // Nothing to move; `from` may then sit at the start of the next chunk.
    if (from === end) return
    const c = from >>> CHUNK_BITS
    const f = from & IN_CHUNK
    const e = f + (end - from)
    const points = this.points[c]!
    const owners = this.owners[c]!
    const resolved = this.resolved[c]!
    // A plain loop: a bucket moves a few dozen entries, where three copyWithin calls
    // cost more in call overhead than in copying.
    if (by === 1) {
      for (let k = e; k > f; k--) {
        points[k] = points[k - 1]!
        owners[k] = owners[k - 1]!
        resolved[k] = resolved[k - 1]!
      }
    } else {
      for (let k = f; k < e; k++) {
        points[k - 1] = points[k]!
        owners[k - 1] = owners[k]!
        resolved[k - 1] = resolved[k]!
      }
    }
  }

  write (pos: number, point: number, owner: number, resolved: number): void {
    const c = pos >>> CHUNK_BITS
    const j = pos & IN_CHUNK
    this.points[c]![j] = point
    this.owners[c]![j] = owner
    this.resolved[c]![j] = resolved
  }
}

function grown<A extends Uint32Array | Int32Array> (from: A, to: A): A {
  to.set(from)
  return to
}
