import { idBytes, pointCounts, pointOf, type Ring, type RingMember } from './ring.js'

/** Packs (point, index) into one float64 for a native sort: 2^32 × 2^20 < 2^53 keeps it exact. */
const PACK = 1048576

/**
 * Where each key would go if the ring's membership were `target` (sorted by id,
 * `eligible[i]` for target[i]), read off the live ring without building the
 * other one: Balancer.preview and the 'remap' event ask this before a change.
 * The target's ring is the live one minus the points of upstreams that leave (or
 * whose count shrinks), plus the points of those that come (or grow), which are
 * few for one change: the lookup walks both in ring order from the key's hash to
 * the first point of an eligible target member.
 *
 * Returns a function from a key hash, and the live ring's `slot(hash)` (-1 when the
 * ring is empty: the caller often has it already), to an index into `target`, or -1
 * when no target member is eligible. Costs O(points that differ) to set up, and
 * per lookup the number of points walked past (1 when the key's point is
 * unchanged and eligible). Upstreams are capped at 2^20 (the packing above).
 */
export function lookupIf<T extends RingMember> (ring: Ring<T>, target: readonly T[], eligible: Uint8Array, vnodes: number): (hash: number, slot: number) => number {
  const counts = pointCounts(target, vnodes)
  /** Per owner code: its index in `target`, -1 when it leaves. */
  const indexOf = new Int32Array(ring.codeLimit).fill(-1)
  const added: number[] = []
  /** point × PACK + code of live points the target does not have. */
  const dropped = new Set<number>()
  target.forEach((u, i) => {
    const code = ring.codeOf(u.id)
    const held = code === undefined ? 0 : ring.countOf(code)
    if (code !== undefined) indexOf[code] = i
    if (counts[i] === held) return
    const bytes = idBytes(u.id)
    for (let j = held; j < counts[i]!; j++) added.push(pointOf(bytes, j) * PACK + i)
    if (code === undefined || counts[i]! > held) return
    // Seeds [count, held) go. Two seeds of one id can share a point (≈ 1 id in 1,000
    // at 3,000 vnodes): such a point stays if a kept seed has it.
    const kept = new Set<number>()
    for (let j = 0; j < counts[i]!; j++) kept.add(pointOf(bytes, j))
    for (let j = counts[i]!; j < held; j++) {
      const p = pointOf(bytes, j)
      if (!kept.has(p)) dropped.add(p * PACK + code)
    }
  })
  const extra = Float64Array.from(added).sort()
  const extraPoints = Uint32Array.from(extra, v => Math.floor(v / PACK))
  const extraIndex = Int32Array.from(extra, (v, k) => v - extraPoints[k]! * PACK)
  const n = ring.size
  const m = extra.length

  return (hash, slot) => {
    let pos = slot
    let e = lowerBound(extraPoints, hash)
    if (e === m) e = 0
    // Both sequences run clockwise from `hash`: the nearer point (distance mod 2^32)
    // comes first, equal points by id, as on a ring built from scratch.
    for (let left = n, more = m; left > 0 || more > 0;) {
      let fromRing = more === 0
      if (!fromRing && left > 0) {
        const dr = (ring.point(pos) - hash) >>> 0
        const de = (extraPoints[e]! - hash) >>> 0
        fromRing = dr < de || (dr === de && ring.idOf(ring.owner(pos)) < target[extraIndex[e]!]!.id)
      }
      if (fromRing) {
        const code = ring.owner(pos)
        const i = indexOf[code]!
        if (i !== -1 && eligible[i] === 1 && (dropped.size === 0 || !dropped.has(ring.point(pos) * PACK + code))) return i
        pos = ring.next(pos)
        left--
      } else {
        const i = extraIndex[e]!
        if (eligible[i] === 1) return i
        e = e + 1 === m ? 0 : e + 1
        more--
      }
    }
    return -1
  }
}

function lowerBound (points: Uint32Array, hash: number): number {
  let lo = 0
  let hi = points.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (points[mid]! < hash) lo = mid + 1
    else hi = mid
  }
  return lo
}
