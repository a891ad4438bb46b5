import type { Choice, PickReason, PickResult } from '../model/choice.js'
import { isPromise } from '../model/choice.js'
import type { Members } from '../model/members.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { boundedCap } from '../hashing/bounded-loads.js'
import { finiteNumber } from '../options.js'
import { pickWithRoom } from './pick-with-room.js'
import type { Strategy } from './strategy.js'

/** Validates a `sessionBalanceFactor` option; undefined (no cap) stays undefined. */
export function sessionCap (factor: number | undefined): SessionCap | undefined {
  if (factor === undefined) return undefined
  return new SessionCap(finiteNumber('sessionBalanceFactor', factor, 0, { above: 1 }, 'expected a number > 1, e.g. 1.25 (no upstream above 1.25 × the average bound users)'))
}

/**
 * Bounded loads on sessions: the same cap applied to bound users instead of
 * requests in flight. When a sticky strategy places a user (a new one, or one
 * failing over), an upstream already at its cap — `bound` counted over the
 * upstreams that take new users, the newcomer included — is set aside and `assign`
 * is asked again with those upstreams `aside` (an explicit parameter: the request's
 * own record of failed upstreams is left alone). Bound users never move; only
 * where newcomers go changes, so no upstream ends up above the cap through
 * placements (departures can still leave one above it, until its users leave in
 * turn). With few sessions per upstream the rounding up dominates (10 users per
 * upstream and c = 1.25: at most 13).
 */
export class SessionCap {
  readonly factor: number

  constructor (factor: number) {
    this.factor = factor
  }

  /**
   * `assign`'s pick for the user, unless that upstream is full; sets
   * `choice.reason` to `reason`, or to 'capped' when the cap turned the user away
   * from assign's first answer. `counts` are the live bound users per upstream id.
   * `room`: upstreams without capacity (the balancer's aside), avoided when another
   * upstream under the cap has room; the cap comes first.
   */
  place (assign: Strategy, req: RouteRequest, choice: Choice, reason: PickReason, members: Members, counts: ReadonlyMap<string, number>, room?: ReadonlySet<Upstream>): PickResult {
    const r = pickWithRoom(assign, req, choice, room)
    if (isPromise(r)) return r.then(u => this.#admit(u, assign, req, choice, reason, members, counts, room))
    return this.#admit(r, assign, req, choice, reason, members, counts, room)
  }

  #admit (u: Upstream | undefined, assign: Strategy, req: RouteRequest, choice: Choice, reason: PickReason, members: Members, counts: ReadonlyMap<string, number>, room: ReadonlySet<Upstream> | undefined): PickResult {
    choice.reason = reason
    if (u === undefined) return u
    const eligible = members.eligible
    let bound = 0
    let weight = 0
    // Effective weights (Members.weightOf): an upstream under slow start has a ramped cap.
    for (const e of eligible) {
      bound += counts.get(e.id) ?? 0
      weight += members.weightOf(e)
    }
    const full = (x: Upstream): boolean => (counts.get(x.id) ?? 0) >= boundedCap(this.factor, bound + 1, weight, members.weightOf(x))
    if (!full(u)) return u
    const capped = eligible.filter(full)
    const aside = new Set(room === undefined ? capped : [...capped, ...room])
    const settle = (v: Upstream | undefined): Upstream | undefined => {
      choice.reason = 'capped'
      if (v !== undefined && !aside.has(v) && !full(v)) return v
      // `assign` ignored what was set aside, or had nothing left: the upstream with
      // the fewest users per unit of weight, never full (it is at most the average),
      // one with capacity if any.
      const best = leastBound(eligible, counts, choice, room, members) ?? (room === undefined ? undefined : leastBound(eligible, counts, choice, undefined, members))
      // Every upstream with room failed this request: serving beats refusing.
      if (best === undefined) choice.reason = reason
      return best ?? u
    }
    const again = assign.pick(req, choice, aside)
    return isPromise(again) ? again.then(settle) : settle(again)
  }
}

/** The upstream with the fewest bound users per unit of weight, among those neither tried nor in `skip`. */
function leastBound (eligible: readonly Upstream[], counts: ReadonlyMap<string, number>, choice: Choice, skip: ReadonlySet<Upstream> | undefined, members: Members): Upstream | undefined {
  let best: Upstream | undefined
  let least = Infinity
  for (const x of eligible) {
    const ratio = (counts.get(x.id) ?? 0) / members.weightOf(x)
    if (ratio < least && !choice.avoids(x) && skip?.has(x) !== true) { best = x; least = ratio }
  }
  return best
}
