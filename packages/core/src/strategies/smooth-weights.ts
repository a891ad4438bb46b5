/**
 * Smooth weighted round robin, as nginx does it (ngx_http_upstream_round_robin.c,
 * ngx_http_upstream_get_peer): each pick adds every candidate's weight to its
 * counter, takes the largest, and subtracts the candidates' total from the winner.
 * Weights 5:1:1 give a a b a c a a rather than a a a a a b c; equal weights give a
 * plain rotation. Round robin picks among all eligible upstreams with it; least
 * connections breaks ties with it. Rebuilt on every membership change (`reset`).
 */
export class SmoothWeights {
  #weights = new Float64Array(0)
  #current = new Float64Array(0)

  /** New weights (one per candidate index); counters restart at zero. */
  reset (weights: ArrayLike<number>): void {
    this.#weights = Float64Array.from(weights)
    this.#current = new Float64Array(weights.length)
  }

  get weights (): Float64Array {
    return this.#weights
  }

  /**
   * The winner among the candidate indices `ids[0..n)` (with `ids` undefined: among
   * 0..n-1); -1 when n is 0. Allocates nothing.
   */
  pick (n: number, ids?: Int32Array): number {
    const current = this.#current
    const weights = this.#weights
    let best = -1
    let total = 0
    for (let k = 0; k < n; k++) {
      const i = ids === undefined ? k : ids[k]!
      current[i]! += weights[i]!
      total += weights[i]!
      if (best === -1 || current[i]! > current[best]!) best = i
    }
    if (best !== -1) current[best]! -= total
    return best
  }
}
