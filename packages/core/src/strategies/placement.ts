import { isPromise, type Choice, type PickReason, type PickResult } from '../model/choice.js'
import type { Members } from '../model/members.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { leastConnections } from './least-connections.js'
import { pickWithRoom } from './pick-with-room.js'
import { sessionCap, type SessionCap } from './session-cap.js'
import type { Strategy } from './strategy.js'

/**
 * Where a sticky strategy puts a user it has no binding for (a new user, or one
 * whose upstream is down, removed or failed): `assign` chooses (least connections
 * by default), under the session cap when `sessionBalanceFactor` is set. The two
 * sticky strategies differ only in how they remember the answer (a cookie, a
 * stick table), which they do in `bind` when the placement resolves.
 */
export class Placement {
  readonly assign: Strategy
  readonly cap: SessionCap | undefined
  #members: Members | undefined

  constructor (assign: Strategy | undefined, sessionBalanceFactor: number | undefined) {
    this.assign = assign ?? leastConnections()
    this.cap = sessionCap(sessionBalanceFactor)
  }

  update (members: Members): void {
    this.#members = members
    this.assign.update(members)
  }

  /**
   * Places the user and records why (`reason`: 'assigned' for a new user,
   * 'failover' for one re-placed, 'capped' when the cap turned them away from
   * assign's answer); `counts` gives the live bound users per upstream when the cap
   * needs them. `bind` sees the result (or undefined) before it is returned.
   * `aside`: upstreams without capacity (the balancer's), avoided when another has room.
   */
  place (req: RouteRequest, choice: Choice, reason: PickReason, counts: () => ReadonlyMap<string, number>, bind: (u: Upstream | undefined) => Upstream | undefined, aside?: ReadonlySet<Upstream>): PickResult {
    let r: PickResult
    if (this.cap === undefined) {
      r = pickWithRoom(this.assign, req, choice, aside)
      if (isPromise(r)) return r.then(u => { choice.reason = reason; return bind(u) })
      choice.reason = reason
    } else {
      r = this.cap.place(this.assign, req, choice, reason, this.#members!, counts(), aside)
      if (isPromise(r)) return r.then(bind)
    }
    return bind(r)
  }

  close (): void | Promise<void> {
    return this.assign.close?.()
  }
}
