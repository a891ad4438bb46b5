import { sortByPoint } from './radix.js'
import { idBytes, pointCounts, pointOf, type RingMember } from './ring-points.js'
import type { Ring } from './ring.js'

/** Packs (point, owner code) into one float64 set key: 2^32 × 2^20 < 2^53 keeps it exact. */
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
  let extraPoints = new Uint32Array(64)
  let extraIndex = new Int32Array(64)
  let m = 0
  /** point × PACK + code of live points the target does not have. */
  const dropped = new Set<number>()
  target.forEach((u, i) => {
    const code = ring.codeOf(u.id)
    const held = code === undefined ? 0 : ring.countOf(code)
    if (code !== undefined) indexOf[code] = i
    if (counts[i] === held) return
    const bytes = idBytes(u.id)
    if (m + counts[i]! - held > extraPoints.length) {
      const size = 2 * (m + counts[i]! - held)
      extraPoints = grow(extraPoints, new Uint32Array(size))
      extraIndex = grow(extraIndex, new Int32Array(size))
    }
    for (let j = held; j < counts[i]!; j++) {
      extraPoints[m] = pointOf(bytes, j)
      extraIndex[m++] = i
    }
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
  // In target (id) order, seeds ascending: a stable sort keeps equal points in id order.
  extraPoints = extraPoints.subarray(0, m)
  extraIndex = extraIndex.subarray(0, m)
  sortByPoint(extraPoints, extraIndex, m)
  const n = ring.size

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

function grow<A extends Uint32Array | Int32Array> (from: A, to: A): A {
  to.set(from)
  return to
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
