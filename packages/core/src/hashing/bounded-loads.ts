import type { Placement } from './table.js'

/**
 * The bounded-loads cap, ceil(c × average) per unit of weight (Mirrokni, Thorup,
 * Zadimoghaddam, "Consistent Hashing with Bounded Loads", SODA 2018), as the paper
 * counts it: over the `total` load of the candidates with total weight `weight`,
 * the item being placed included (`total` already counts it). Worked example:
 * c = 1.25, 10 users on 3 equal upstreams, an 11th to place:
 * ceil(1.25 × 11 / 3) = ceil(4.58) = 5 per upstream.
 * Rounding noise must not lift a cap by one: 1.1 × 10 is 11.000000000000002.
 * Used for requests in flight (consistentHash `balanceFactor`) and for bound users
 * (the session cap).
 */
export function boundedCap (factor: number, total: number, weight: number, w: number): number {
  return Math.ceil(factor * total * w / weight * (1 - 1e-12))
}

/** What the walk needs of a candidate: its load now. */
export interface Loaded { readonly load: number }

/**
 * Bounded loads as a decorator over any placement (Envoy's
 * BoundedLoadHashingLoadBalancer wraps ring or Maglev alike): from the key's
 * position, walk forward to the first owner that `skip` does not avoid (it failed
 * this request: the request's Choice) and is under its cap (HAProxy lb_chash.c chash_server_is_eligible).
 * `factor` 0 checks no cap (the walk only skips). Returns the owner's code (its
 * index in `placement.owners`), or -1 when none qualifies. Called per request only
 * when a cap is on or a retry skips owners; O(positions walked).
 */
export function boundedWalk<T extends Loaded> (placement: Placement<T>, pos: number, factor: number, totalLoad: number, eligibleWeight: number, skip: { avoids (u: T): boolean }, weights: { weightOf (u: T): number }): number {
  const owners = placement.owners
  let last = -1
  for (let k = 0, p = pos; k < placement.size; k++, p = placement.next(p)) {
    const o = placement.resolved(p) >> 1
    if (o === last) continue
    last = o
    const u = owners[o]!
    if (skip.avoids(u)) continue
    if (factor !== 0 && u.load >= boundedCap(factor, totalLoad + 1, eligibleWeight, weights.weightOf(u))) continue
    return o
  }
  return -1
}
