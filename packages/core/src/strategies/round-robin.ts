import type { Members } from '../model/members.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import type { Strategy } from './strategy.js'
import type { Choice } from '../model/choice.js'

/**
 * Smooth weighted round robin, as nginx does it (ngx_http_upstream_round_robin.c,
 * ngx_http_upstream_get_peer): each pick adds every weight to its counter, takes
 * the largest, and subtracts the total from the winner. Weights 5:1:1 give
 * a a b a c a a rather than a a a a a b c. With equal weights it is a plain rotation.
 * Stateless towards users: never sticky, the baseline every sticky strategy beats.
 */
class RoundRobin implements Strategy {
  readonly name = 'roundRobin'
  #list: readonly Upstream[] = []
  #weights = new Float64Array(0)
  #current = new Float64Array(0)
  #uniform = true
  #next = 0

  update (members: Members): void {
    this.#list = members.eligible
    this.#weights = Float64Array.from(this.#list, u => u.weight)
    this.#current = new Float64Array(this.#list.length)
    this.#uniform = this.#list.every(u => u.weight === this.#list[0]!.weight)
    this.#next = 0
  }

  pick (_req: RouteRequest, choice: Choice): Upstream | undefined {
    choice.reason = 'rotation'
    const list = this.#list
    const n = list.length
    if (this.#uniform) {
      for (let k = 0; k < n; k++) {
        const i = this.#next
        this.#next = i + 1 === n ? 0 : i + 1
        const u = list[i]!
        if (!choice.avoids(u)) return u
      }
      return undefined
    }
    const current = this.#current
    const weights = this.#weights
    let best = -1
    let total = 0
    for (let i = 0; i < n; i++) {
      if (choice.avoids(list[i]!)) continue
      current[i]! += weights[i]!
      total += weights[i]!
      if (best === -1 || current[i]! > current[best]!) best = i
    }
    if (best === -1) return undefined
    current[best]! -= total
    return list[best]
  }
}

export function roundRobin (): Strategy {
  return new RoundRobin()
}
