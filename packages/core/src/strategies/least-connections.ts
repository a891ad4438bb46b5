import type { Choice } from '../model/choice.js'
import type { Members } from '../model/members.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { SmoothWeights } from './smooth-weights.js'
import type { Strategy } from './strategy.js'

/**
 * Fewest in-flight requests plus open WebSockets per unit of weight (nginx
 * least_conn, HAProxy leastconn). Counting WebSockets matters for stateful apps:
 * a server holding 1,000 idle sockets is not free (apache/apisix#7301).
 * Ties go by smooth weighted round robin among the least loaded, as nginx does
 * (ngx_http_upstream_get_least_conn_peer): equal servers share new users instead of
 * the first one taking them all, and when loads stay at zero (sequential requests)
 * weights still decide the split.
 */
class LeastConnections implements Strategy {
  readonly name = 'leastConnections'
  #list: readonly Upstream[] = []
  /** Smooth weighted round robin, used only to break ties. */
  readonly #smooth = new SmoothWeights()
  /** Indices of the upstreams tied at the lowest load in the current pick (reused). */
  #ties = new Int32Array(0)

  update (members: Members): void {
    this.#list = members.eligible
    // Effective weights: an upstream under slow start counts as that much smaller.
    this.#smooth.reset(members.eligibleWeights)
    this.#ties = new Int32Array(this.#list.length)
  }

  pick (_req: RouteRequest, choice: Choice, aside?: ReadonlySet<Upstream>): Upstream | undefined {
    choice.reason = 'least-load'
    const list = this.#list
    const weights = this.#smooth.weights
    const ties = this.#ties
    const n = list.length
    // One scan: the lowest load/weight (compared without dividing) and who ties at it.
    let tied = 0
    let bestLoad = 0
    let bestWeight = 1
    for (let i = 0; i < n; i++) {
      const u = list[i]!
      if ((choice.tried !== undefined && choice.avoids(u)) || (aside !== undefined && aside.has(u))) continue
      const load = u.inFlight + u.websockets
      const w = weights[i]!
      if (tied === 0 || load * bestWeight < bestLoad * w) {
        bestLoad = load
        bestWeight = w
        tied = 0
        ties[tied++] = i
      } else if (load * bestWeight === bestLoad * w) {
        ties[tied++] = i
      }
    }
    if (tied === 0) return undefined
    if (tied === 1) return list[ties[0]!]
    return list[this.#smooth.pick(tied, ties)]
  }
}

export function leastConnections (): Strategy {
  return new LeastConnections()
}
