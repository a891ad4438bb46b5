import { invalidOption } from '../errors.js'
import type { Members } from '../model/members.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { type Strategy } from './strategy.js'
import { isPromise, type Choice, type PickReason, type PickResult } from '../model/choice.js'

/** Validates a `sessionBalanceFactor` option; undefined (no cap) stays undefined. */
export function sessionCap (factor: number | undefined): SessionCap | undefined {
  if (factor === undefined) return undefined
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor <= 1) {
    throw invalidOption('sessionBalanceFactor', 'expected a number > 1, e.g. 1.25 (no upstream above 1.25 × the average bound users)')
  }
  return new SessionCap(factor)
}

/**
 * Places a user with `assign` (no cap) and records why: `reason` is 'assigned' for
 * a new user, 'failover' for one re-placed.
 */
export function placeUser (assign: Strategy, req: RouteRequest, choice: Choice, reason: PickReason): PickResult {
  const r = assign.pick(req, choice)
  if (isPromise(r)) return r.then(u => { choice.reason = reason; return u })
  choice.reason = reason
  return r
}

/**
 * Bounded loads on sessions: consistent hashing with bounded loads (Mirrokni,
 * Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads", SODA 2018)
 * applied to bound users instead of requests in flight. When a sticky strategy
 * places a user (a new one, or one failing over), an upstream already holding
 * ceil(factor × (bound + 1) × weight ÷ total weight) users — `bound` counted over
 * the upstreams that take new users, the newcomer included, as the paper counts
 * the ball being placed — is skipped: `assign` is asked again with every such
 * upstream set aside. Bound users never move; only where newcomers go changes,
 * so no upstream ends up above the bound through placements (departures can
 * still leave one above it, until its users leave in turn).
 *
 * The paper bounds the busiest bin at ceil(c × average) for any c > 1; with few
 * sessions per upstream the rounding up dominates (10 users per upstream and
 * c = 1.25: at most 13).
 */
export class SessionCap {
  readonly factor: number

  constructor (factor: number) {
    this.factor = factor
  }

  /**
   * `assign`'s pick for the user, unless that upstream is full; sets
   * `choice.reason` to `reason`, or to 'spill' for a new user turned away.
   * `counts` are the live bound users per upstream id.
   */
  place (assign: Strategy, req: RouteRequest, choice: Choice, reason: PickReason, members: Members, counts: ReadonlyMap<string, number>): PickResult {
    const r = assign.pick(req, choice)
    if (isPromise(r)) return r.then(u => this.#admit(u, assign, req, choice, reason, members, counts))
    return this.#admit(r, assign, req, choice, reason, members, counts)
  }

  #admit (u: Upstream | undefined, assign: Strategy, req: RouteRequest, choice: Choice, reason: PickReason, members: Members, counts: ReadonlyMap<string, number>): PickResult {
    choice.reason = reason
    if (u === undefined) return u
    const eligible = members.eligible
    let bound = 0
    let weight = 0
    for (const e of eligible) {
      bound += counts.get(e.id) ?? 0
      weight += e.weight
    }
    const perWeight = this.factor * (bound + 1) / weight
    // Rounding noise must not lift a cap by one: 1.1 × 10 is 11.000000000000002.
    const full = (x: Upstream): boolean => (counts.get(x.id) ?? 0) >= Math.ceil(perWeight * x.weight * (1 - 1e-12))
    if (!full(u)) return u
    const aside = eligible.filter(full)
    const tried = choice.tried
    choice.tried = tried === undefined ? aside : [...tried, ...aside]
    const settle = (v: Upstream | undefined): Upstream | undefined => {
      choice.tried = tried
      choice.reason = reason === 'assigned' ? 'spill' : reason
      if (v !== undefined && !full(v)) return v
      // `assign` ignored what was set aside, or had nothing left: the upstream with
      // the fewest users per unit of weight, never full (it is at most the average).
      let best: Upstream | undefined
      let least = Infinity
      for (const x of eligible) {
        const ratio = (counts.get(x.id) ?? 0) / x.weight
        if (ratio < least && !choice.avoids(x)) { best = x; least = ratio }
      }
      // Every upstream with room failed this request: serving beats refusing.
      if (best === undefined) choice.reason = reason
      return best ?? u
    }
    let again: PickResult
    try {
      again = assign.pick(req, choice)
    } catch (err) {
      choice.tried = tried
      throw err
    }
    if (isPromise(again)) return again.then(settle, (err: unknown) => { choice.tried = tried; throw err })
    return settle(again)
  }
}
