import type { Members } from '../members.js'
import type { RouteRequest } from '../types.js'
import type { Upstream } from '../upstream.js'
import type { Choice, Strategy } from './strategy.js'

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
  /** Smooth weighted round-robin counters, used only to break ties. */
  #current = new Float64Array(0)

  update (members: Members): void {
    this.#list = members.eligible
    this.#current = new Float64Array(this.#list.length)
  }

  pick (_req: RouteRequest, choice: Choice): Upstream | undefined {
    choice.reason = 'least-load'
    const list = this.#list
    const n = list.length
    let best: Upstream | undefined
    for (let i = 0; i < n; i++) {
      const u = list[i]!
      if (choice.avoids(u)) continue
      // load/weight < best.load/best.weight, without dividing.
      if (best === undefined || u.load * best.weight < best.load * u.weight) best = u
    }
    if (best === undefined) return undefined
    const current = this.#current
    let winner = -1
    let total = 0
    for (let i = 0; i < n; i++) {
      const u = list[i]!
      if (u.load * best.weight !== best.load * u.weight || choice.avoids(u)) continue
      current[i]! += u.weight
      total += u.weight
      if (winner === -1 || current[i]! > current[winner]!) winner = i
    }
    current[winner]! -= total
    return list[winner]
  }
}

export function leastConnections (): Strategy {
  return new LeastConnections()
}
