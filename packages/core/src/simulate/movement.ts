import { round6 } from '../render/format.js'
/** Who went where when membership changed: a from → to count matrix and its totals. */
export interface Movement {
  /** Row labels: the upstreams before the change. */
  from: string[]
  /** Column labels: the upstreams after it. */
  to: string[]
  /** counts[r][c]: entries on from[r] before and on to[c] after; the diagonal stayed put. */
  counts: number[][]
  /** Entries whose upstream changed (entries the balancer could not place are left out). */
  moved: number
  /** moved ÷ every entry. */
  fraction: number
  /** Moved because their upstream was removed: unavoidable. */
  offRemoved: number
  /** Moved from an upstream that stayed onto an added one. */
  ontoAdded: number
  /** Moved from an upstream that stayed to another that was there before: avoidable churn. */
  between: number
  /**
   * The least a balanced placement must move, as a fraction: the removed upstreams'
   * entries, plus the added upstreams' fair share of the rest.
   */
  balancedMinimum: number
  /** Entries placed before the change but not after it, or the reverse. */
  unplaced: number
}


/**
 * `before[i]` / `after[i]`: the index in `ids` of entry i's upstream, or -1.
 * `from` and `to` list the members before and after, in display order.
 */
export function movementOf (
  ids: readonly string[],
  from: ReadonlyArray<{ id: string, weight: number }>,
  to: ReadonlyArray<{ id: string, weight: number }>,
  before: Int32Array,
  after: Int32Array,
): Movement {
  const row = new Int32Array(ids.length).fill(-1)
  const col = new Int32Array(ids.length).fill(-1)
  from.forEach((u, r) => { row[ids.indexOf(u.id)] = r })
  to.forEach((u, c) => { col[ids.indexOf(u.id)] = c })
  const counts = from.map(() => new Array<number>(to.length).fill(0))
  let moved = 0
  let offRemoved = 0
  let ontoAdded = 0
  let between = 0
  let unplaced = 0
  let onRemoved = 0
  for (let i = 0; i < before.length; i++) {
    const b = before[i]!
    const a = after[i]!
    if (b !== -1 && col[b] === -1) onRemoved++
    if (b === -1 || a === -1) { unplaced++; continue }
    counts[row[b]!]![col[a]!]!++
    if (a === b) continue
    moved++
    if (col[b] === -1) offRemoved++
    else if (row[a] === -1) ontoAdded++
    else between++
  }
  const total = before.length
  const addedWeight = to.filter(u => !from.some(f => f.id === u.id)).reduce((s, u) => s + u.weight, 0)
  const afterWeight = to.reduce((s, u) => s + u.weight, 0)
  const removedShare = total === 0 ? 0 : onRemoved / total
  return {
    from: from.map(u => u.id),
    to: to.map(u => u.id),
    counts,
    moved,
    fraction: total === 0 ? 0 : round6(moved / total),
    offRemoved,
    ontoAdded,
    between,
    balancedMinimum: round6(removedShare + (1 - removedShare) * addedWeight / afterWeight),
    unplaced,
  }
}
