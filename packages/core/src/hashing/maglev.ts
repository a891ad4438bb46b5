import { murmur3 } from './murmur3.js'
import type { HashTable } from './table.js'
import { NEVER, type Deadline } from './deadline.js'

/** Envoy's default and the paper's §5.3 choice: a prime, ≥ 100 × N for N ≤ 655. */
export const DEFAULT_MAGLEV_SIZE = 65537

const OFFSET_SEED = 0x4d61676c // "Magl"
const SKIP_SEED = 0x65762121 // "ev!!"

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
  readonly #weights: readonly number[]
  readonly #maxWeight: number
  #iteration = 1
  #next = 0
  #filled = 0

  /**
   * Called once per membership change (not per health change: table.ts resolveEligible
   * handles those). `ids` sorted as Members.all, `weights` alike, `size` a prime.
   * Each upstream's permutation is walked by adding `skip` and wrapping once
   * (offset + j × skip mod M, one step at a time: the same slots the formula gives,
   * without a float modulo per probe), which makes a 65,537-entry table for 1,000
   * upstreams ≈ 3.5 ms instead of ≈ 15 (bench/strategies.js, build). Filled here
   * until `deadline`, the rest by `fill` (ConsistentHash does it in slices at fleet
   * scale: hashing/maglev-tables.ts).
   */
  constructor (ids: readonly string[], weights: readonly number[], size: number, deadline: Deadline = NEVER) {
    const m = size
    this.size = m
    this.owner = new Int32Array(m).fill(-1)
    const n = ids.length
    // Positions and steps are < m ≤ 5,000,011, so `c + step` stays well inside int32.
    this.#at = new Int32Array(n)
    this.#skip = new Int32Array(n)
    this.#target = new Float64Array(n)
    this.#weights = weights
    let maxWeight = 0
    for (let i = 0; i < n; i++) {
      this.#at[i] = murmur3(ids[i]!, OFFSET_SEED) % m
      this.#skip[i] = (murmur3(ids[i]!, SKIP_SEED) % (m - 1)) + 1
      if (weights[i]! > maxWeight) maxWeight = weights[i]!
    }
    this.#maxWeight = maxWeight
    if (n === 0) this.#filled = m
    else this.fill(deadline)
  }

  /** Goes on filling, in turns as the paper's Pseudocode 1, until the table is whole (true) or `deadline` (false). */
  fill (deadline: Deadline = NEVER): boolean {
    const m = this.size
    const owner = this.owner
    const at = this.#at
    const skip = this.#skip
    const target = this.#target
    const weights = this.#weights
    const n = weights.length
    let filled = this.#filled
    let i = this.#next
    while (filled < m) {
      if (i === n) {
        i = 0
        this.#iteration++
        // A look at the clock per round of turns (≤ n slots), and every 64 slots below.
        this.#filled = filled
        this.#next = 0
        if (deadline()) return false
      }
      if (this.#iteration * weights[i]! >= target[i]!) {
        target[i]! += this.#maxWeight
        const step = skip[i]!
        let c = at[i]!
        while (owner[c] !== -1) {
          c += step
          if (c >= m) c -= m
        }
        owner[c] = i
        c += step
        at[i] = c >= m ? c - m : c
        filled++
        // The last rounds probe long (a slot takes ≈ 1 / (share still empty) probes):
        // with one look per round, slices at 1,000 upstreams ran up to a round's probes
        // past their deadline (`npm run bench:membership`, its slices column).
        if ((filled & 63) === 0 && filled < m && deadline()) {
          this.#filled = filled
          this.#next = i + 1
          return false
        }
      }
      i++
    }
    this.#filled = filled
    this.#next = i
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
