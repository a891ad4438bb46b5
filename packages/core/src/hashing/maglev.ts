import { murmur3 } from './murmur3.js'
import type { HashTable } from './table.js'

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

  constructor (ids: readonly string[], weights: readonly number[], size: number) {
    const m = size
    this.size = m
    const owner = new Int32Array(m).fill(-1)
    this.owner = owner
    const n = ids.length
    if (n === 0) return
    const offset = new Float64Array(n)
    const skip = new Float64Array(n)
    const next = new Float64Array(n)
    const target = new Float64Array(n)
    let maxWeight = 0
    for (let i = 0; i < n; i++) {
      offset[i] = murmur3(ids[i]!, OFFSET_SEED) % m
      skip[i] = (murmur3(ids[i]!, SKIP_SEED) % (m - 1)) + 1
      if (weights[i]! > maxWeight) maxWeight = weights[i]!
    }
    let filled = 0
    for (let iteration = 1; filled < m; iteration++) {
      for (let i = 0; i < n && filled < m; i++) {
        if (iteration * weights[i]! < target[i]!) continue
        target[i]! += maxWeight
        let c = (offset[i]! + next[i]! * skip[i]!) % m
        while (owner[c] !== -1) {
          next[i]!++
          c = (offset[i]! + next[i]! * skip[i]!) % m
        }
        owner[c] = i
        next[i]!++
        filled++
      }
    }
  }

  slot (hash: number): number {
    return hash % this.size
  }
}
