import { murmur3Bytes } from './murmur3.js'

/** Past this many points every upstream's count is scaled down alike (pointCounts). */
const MAX_POINTS = 1 << 22
const utf8 = new TextEncoder()

/**
 * Points per unit of weight. A node's share of the ring is a sum of V random arcs,
 * so its spread shrinks as 1/√V: 3,000 keeps the busiest upstream's key-space share
 * under 1.05× the mean at N = 10 and near 1.06× at N = 100 (bench/strategies.js),
 * where nginx's 160 points measure 1.13–1.26. A point costs 12 bytes, ≈ 13.4 with
 * the room its bucket keeps to grow (1,000 upstreams; bench/strategies.js, build).
 */
export const DEFAULT_VNODES = 3000

/**
 * Seed j's point of an upstream: murmur3(id, j) (murmur3.ts), computed over the
 * id's UTF-8 bytes encoded once per upstream: ≈ 5× faster than re-encoding the
 * string for each of its thousands of seeds, and the same value.
 */
export function pointOf (bytes: Uint8Array, seed: number): number {
  return murmur3Bytes(bytes, bytes.length, seed)
}

/** An id's UTF-8 bytes, as murmur3 hashes them (lone surrogates as U+FFFD, like TextEncoder). */
export function idBytes (id: string): Uint8Array {
  return utf8.encode(id)
}

/** What the ring needs of an upstream. */
export interface RingMember {
  readonly id: string
  readonly weight: number
}

/**
 * Points per upstream, in `all`'s order: round(vnodes × weight), at least 1. Past
 * MAX_POINTS (large weights × many upstreams) every count is scaled down alike, as
 * Envoy's maximum_ring_size does; below it a count depends only on its own weight.
 * The sum runs in `all`'s order (sorted by id), so every instance rounds alike.
 */
export function pointCounts (all: readonly RingMember[], vnodes: number): Int32Array {
  let wanted = 0
  for (const u of all) wanted += vnodes * u.weight
  const scale = wanted > MAX_POINTS ? MAX_POINTS / wanted : 1
  const counts = new Int32Array(all.length)
  for (let i = 0; i < all.length; i++) counts[i] = Math.max(1, Math.round(vnodes * all[i]!.weight * scale))
  return counts
}
