import { round6 } from '../render/format.js'
/** How many users (or requests) one upstream got, against its fair share. */
export interface UpstreamLoad {
  id: string
  weight: number
  count: number
  /** placed × weight ÷ total weight: what a perfect balancer would give it. */
  fair: number
  /** count ÷ fair (1 is perfect). */
  ratio: number
}

export interface LoadSummary {
  upstreams: UpstreamLoad[]
  /** Users placed on some upstream. */
  placed: number
  /** Users the balancer could not place (no upstream eligible); 0 in every normal run. */
  unplaced: number
  /** The busiest upstream's count ÷ its fair share (with equal weights: max ÷ mean). */
  maxOverMean: number
  /** The idlest upstream's count ÷ its fair share (with equal weights: min ÷ mean). */
  minOverMean: number
}


/**
 * Load per upstream from a placement: `placement[i]` is the index in `ids` of the
 * upstream entry i went to, or -1. `upstreams` lists the members, in display order.
 */
export function loadSummary (upstreams: ReadonlyArray<{ id: string, weight: number }>, ids: readonly string[], placement: Int32Array): LoadSummary {
  const counts = new Float64Array(ids.length)
  let unplaced = 0
  for (const p of placement) {
    if (p === -1) unplaced++
    else counts[p]!++
  }
  const placed = placement.length - unplaced
  const totalWeight = upstreams.reduce((s, u) => s + u.weight, 0)
  const at = new Map(ids.map((id, i) => [id, i]))
  const rows = upstreams.map(u => {
    const count = counts[at.get(u.id)!]!
    const fair = placed * u.weight / totalWeight
    return { id: u.id, weight: u.weight, count, fair: round6(fair), ratio: fair === 0 ? 0 : round6(count / fair) }
  })
  const ratios = rows.map(r => r.ratio)
  return {
    upstreams: rows,
    placed,
    unplaced,
    maxOverMean: Math.max(...ratios),
    minOverMean: Math.min(...ratios),
  }
}
