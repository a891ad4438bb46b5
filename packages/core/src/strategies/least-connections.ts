import type { Members } from '../members.js'
import type { RouteRequest } from '../types.js'
import type { Upstream } from '../upstream.js'
import type { Choice, Strategy } from './strategy.js'

/**
 * Fewest in-flight requests plus open WebSockets per unit of weight (nginx
 * least_conn, HAProxy leastconn). Counting WebSockets matters for stateful apps:
 * a server holding 1,000 idle sockets is not free (apache/apisix#7301).
 * Ties rotate: the scan starts one place later on every pick, so equal servers
 * share new users instead of the first one taking them all.
 */
class LeastConnections implements Strategy {
  readonly name = 'leastConnections'
  #list: readonly Upstream[] = []
  #start = 0

  update (members: Members): void {
    this.#list = members.eligible
    this.#start = 0
  }

  pick (_req: RouteRequest, choice: Choice): Upstream | undefined {
    choice.reason = 'least-load'
    const list = this.#list
    const n = list.length
    if (n === 0) return undefined
    const start = this.#start
    this.#start = start + 1 >= n ? 0 : start + 1
    let best: Upstream | undefined
    for (let k = 0; k < n; k++) {
      const i = start + k < n ? start + k : start + k - n
      const u = list[i]!
      if (choice.avoids(u)) continue
      // load/weight < best.load/best.weight, without dividing.
      if (best === undefined || u.load * best.weight < best.load * u.weight) best = u
    }
    return best
  }
}

export function leastConnections (): Strategy {
  return new LeastConnections()
}
