import type { Balancer } from './balancer.js'

/**
 * The brand every Balancer carries, checked instead of `instanceof`: npm installs a
 * second copy of @affinity/core when the app's range and an adapter's differ, and a
 * balancer built by one copy must be accepted by the other (a class is per copy, a
 * `Symbol.for` key is one per process). Set once on the prototype: no per-instance cost.
 */
export const kBalancer = Symbol.for('affinity.balancer')

/** True for a balancer from createBalancer(), whichever copy of @affinity/core built it. */
export function isBalancer (x: unknown): x is Balancer {
  return typeof x === 'object' && x !== null && (x as { [kBalancer]?: unknown })[kBalancer] === true
}
