/**
 * A consistent-hash lookup structure, built once per membership change.
 * `slot(hash)` maps a key hash to a position; `owner[position]` is the index (in
 * `Members.all`) of the upstream that owns it. Ring and Maglev differ only in how
 * they fill `owner` and find a slot, so the successor walk, the health overlay and
 * bounded loads below are written once for both (as Envoy's HashingLoadBalancer
 * implements only chooseHost(hash, attempt) per policy).
 */
export interface HashTable {
  readonly size: number
  /** Owner of each position: an index into `Members.all`. */
  readonly owner: Int32Array
  slot (hash: number): number
}

/**
 * For every position, the first eligible owner at or after it walking forward
 * (wrapping), encoded as `owner × 2 + (successor ? 1 : 0)`, or -1 when nothing is
 * eligible. Built in O(size) when membership or health changes, so the per-request
 * pick reads one array entry even when the key's own upstream is down; every
 * instance computes the same successor.
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
