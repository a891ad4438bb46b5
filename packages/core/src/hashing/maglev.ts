import { murmur3 } from './murmur3.js'
import type { HashTable } from './table.js'
import { NEVER, type Deadline } from './deadline.js'

/** Envoy's default and the paper's §5.3 choice: a prime, ≥ 100 × N for N ≤ 655. */
export const DEFAULT_MAGLEV_SIZE = 65537

const OFFSET_SEED = 0x4d61676c // "Magl"
const SKIP_SEED = 0x65762121 // "ev!!"

/**
 * Work between looks at the clock while a table is filled in slices. The last slots
 * take ≈ size / (slots still empty) probes each, so with a look per 64 slots filled
 * a slice at 1,000 upstreams ran up to 2 ms past its deadline (2.6 ms where V8 had
 * not optimised the loop; a scratch timing of the previous build); with one per
 * PROBES probes, 0.14–0.25 ms in four runs (0.5–0.8 ms under `node --no-opt`). The constructor's
 * share, within the change's call, was ≈ 1 ms when it hashed every id and marked
 * every slot free at once (0.7 ms of that the page faults of a fresh 256 KiB array);
 * a piece of each (HASHES ids, CLEARED slots) at a time, 0.09–0.17 ms. Figures:
 * `node bench/strategies.js --only build`, "fill overrun".
 */
const PROBES = 4096
const HASHES = 64
const CLEARED = 16384

/**
 * Maglev lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software
 * Network Load Balancer", NSDI 2016, §3.4). Each upstream walks its own
 * permutation of the table (offset + j × skip mod M, M prime) and claims the first
 * free slot, in turns, so entry counts differ by at most one per unit of weight.
 * Weights follow Envoy's maglev_lb.cc: an upstream takes a turn only when
 * iteration × weight has caught up with its running target.
 * A pick is one table read; the price is ≈2× the ideal movement on removal.
 */
export class Maglev implements HashTable {
  readonly size: number
  readonly owner: Int32Array
  /** Each upstream's next slot in its permutation, its step, and the turns it has had (by weight). */
  readonly #at: Int32Array
  readonly #skip: Int32Array
  readonly #target: Float64Array
  readonly #ids: readonly string[]
  readonly #weights: readonly number[]
  readonly #maxWeight: number
  /** Entries set to -1, then upstreams whose permutation (offset and skip) is known: the work before the turns. */
  #cleared = 0
  #hashed = 0
  #iteration = 1
  #next = 0
  #filled = 0

  /**
   * Called once per membership change (not per health change: table.ts ResolvedTable
   * handles those). `ids` sorted as Members.all, `weights` alike, `size` a prime.
   * Each upstream's permutation is walked by adding `skip` and wrapping once
   * (offset + j × skip mod M, one step at a time: the same slots the formula gives,
   * without a float modulo per probe), which makes a 65,537-entry table for 1,000
   * upstreams ≈ 3.5 ms instead of ≈ 15 (bench/strategies.js, build). Hashed and
   * filled here until `deadline`, the rest by `fill` (ConsistentHash does it in
   * slices at fleet scale: hashing/maglev-tables.ts).
   */
  constructor (ids: readonly string[], weights: readonly number[], size: number, deadline: Deadline = NEVER) {
    const m = size
    this.size = m
    // Zero-filled memory, set to -1 (free) by `fill` a piece at a time (#clear).
    this.owner = new Int32Array(m)
    const n = ids.length
    // Positions and steps are < m ≤ 5,000,011, so `c + step` stays well inside int32.
    this.#at = new Int32Array(n)
    this.#skip = new Int32Array(n)
    this.#target = new Float64Array(n)
    this.#ids = ids
    this.#weights = weights
    let maxWeight = 0
    for (let i = 0; i < n; i++) if (weights[i]! > maxWeight) maxWeight = weights[i]!
    this.#maxWeight = maxWeight
    // No upstream takes a turn: every slot stays free (fill's turns would never come round).
    if (n === 0) this.#filled = m
    this.fill(deadline)
  }

  /**
   * Goes on, until the table is whole (true) or `deadline` (false): every slot
   * marked free and each upstream's permutation first, then the slots, in turns as
   * the paper's Pseudocode 1.
   */
  fill (deadline: Deadline = NEVER): boolean {
    const m = this.size
    const owner = this.owner
    const at = this.#at
    const skip = this.#skip
    const target = this.#target
    const weights = this.#weights
    const n = weights.length
    if (this.#cleared < m && !this.#clear(deadline)) return false
    if (this.#hashed < n && !this.#hash(deadline)) return false
    let filled = this.#filled
    let i = this.#next
    let probes = 0
    while (filled < m) {
      if (i === n) {
        i = 0
        this.#iteration++
        // A look at the clock per round of turns (≤ n slots), and every PROBES probes below.
        this.#filled = filled
        this.#next = 0
        if (deadline()) return false
      }
      if (this.#iteration * weights[i]! >= target[i]!) {
        const step = skip[i]!
        let c = at[i]!
        while (owner[c] !== -1) {
          c += step
          if (c >= m) c -= m
          // Stopped mid-turn, the upstream resumes its turn from the slot it reached
          // (those before it are taken, and stay so): the same table.
          if (++probes === PROBES) {
            probes = 0
            if (deadline()) {
              at[i] = c
              this.#filled = filled
              this.#next = i
              return false
            }
          }
        }
        target[i]! += this.#maxWeight
        owner[c] = i
        c += step
        at[i] = c >= m ? c - m : c
        filled++
      }
      i++
    }
    this.#filled = filled
    this.#next = i
    return true
  }

  /** Every slot marked free, CLEARED at a time until `deadline`; whether all are. */
  #clear (deadline: Deadline): boolean {
    const m = this.size
    while (this.#cleared < m) {
      const end = Math.min(m, this.#cleared + CLEARED)
      this.owner.fill(-1, this.#cleared, end)
      this.#cleared = end
      if (end < m && deadline()) return false
    }
    return true
  }

  /** Each upstream's offset and skip, HASHES at a time until `deadline`; whether all are known. */
  #hash (deadline: Deadline): boolean {
    const ids = this.#ids
    const n = ids.length
    const m = this.size
    let i = this.#hashed
    while (i < n) {
      const end = Math.min(n, i + HASHES)
      for (; i < end; i++) {
        this.#at[i] = murmur3(ids[i]!, OFFSET_SEED) % m
        this.#skip[i] = (murmur3(ids[i]!, SKIP_SEED) % (m - 1)) + 1
      }
      this.#hashed = i
      if (i < n && deadline()) return false
    }
    return true
  }

  slot (hash: number): number {
    return hash % this.size
  }
}

/** A Maglev table size must be prime (§3.4: every skip then walks all of it). Trial division: configuration time only. */
export function isPrime (n: number): boolean {
  if (n < 2) return false
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false
  return true
}

/** The smallest prime above n (and ≥ 3): a table for more upstreams than its size. */
export function nextPrime (n: number): number {
  let p = Math.max(3, n + 1)
  while (!isPrime(p)) p++
  return p
}
