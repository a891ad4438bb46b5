import { isPromise, type Choice, type PickResult } from '../model/choice.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import type { Strategy } from './strategy.js'

/**
 * `s`'s pick among the upstreams not set `aside` (those without capacity), or, when
 * every candidate is aside, among all of them: the request then waits in the
 * chosen upstream's queue rather than being refused while others would serve it
 * later. With `aside` undefined (the common case) this is one plain pick.
 */
export function pickWithRoom (s: Strategy, req: RouteRequest, choice: Choice, aside: ReadonlySet<Upstream> | undefined): PickResult {
  const r = s.pick(req, choice, aside)
  if (aside === undefined) return r
  if (isPromise(r)) return r.then(u => u ?? s.pick(req, choice))
  return r ?? s.pick(req, choice)
}
