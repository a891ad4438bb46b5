/**
 * Random draws of candidate indices in proportion to their weights, O(1) each:
 * Walker's alias method as Vose arranged it ("A linear algorithm for generating
 * random numbers with a given distribution", IEEE TSE 1991), built once per
 * membership change. Equal weights skip the table (one multiplication). The
 * generator is mulberry32 (the simulator's, simulate/prng.ts), kept inline so a draw
 * allocates nothing and calls nothing: seeded, two balancers with the same seed draw
 * the same sequence (deterministic tests).
 */
export class WeightedDraw {
  #state: number
  #n = 0
  #uniform = true
  /** Per slot: the chance (scaled to 2^32) of keeping it rather than taking its alias. */
  #keep = new Float64Array(0)
  #alias = new Int32Array(0)

  constructor (seed: number) {
    this.#state = seed | 0
  }

  reset (weights: ArrayLike<number>): void {
    const n = weights.length
    this.#n = n
    let total = 0
    let uniform = true
    for (let i = 0; i < n; i++) {
      total += weights[i]!
      if (weights[i] !== weights[0]) uniform = false
    }
    this.#uniform = uniform
    if (uniform) return
    const keep = new Float64Array(n)
    const alias = new Int32Array(n)
    const scaled = Array.from(weights, w => w * n / total)
    const small: number[] = []
    const large: number[] = []
    scaled.forEach((p, i) => (p < 1 ? small : large).push(i))
    while (small.length > 0 && large.length > 0) {
      const s = small.pop()!
      const l = large.pop()!
      keep[s] = scaled[s]! * 2 ** 32
      alias[s] = l
      scaled[l] = scaled[l]! + scaled[s]! - 1
      ;(scaled[l]! < 1 ? small : large).push(l)
    }
    // What is left is 1 up to rounding: always kept.
    for (const i of [...small, ...large]) { keep[i] = 2 ** 32; alias[i] = i }
    this.#keep = keep
    this.#alias = alias
  }

  /** An index in [0, n), drawn in proportion to the weights (n > 0). */
  draw (): number {
    const i = Math.floor(this.#next() * this.#n / 4294967296)
    if (this.#uniform) return i
    return this.#next() < this.#keep[i]! ? i : this.#alias[i]!
  }

  /** mulberry32: a uint32. */
  #next (): number {
    let a = this.#state = (this.#state + 0x6D2B79F5) | 0
    a = Math.imul(a ^ (a >>> 15), a | 1)
    a ^= a + Math.imul(a ^ (a >>> 7), a | 61)
    return (a ^ (a >>> 14)) >>> 0
  }
}
