import { randomInt } from 'node:crypto'
import type { Choice } from '../model/choice.js'
import type { Members } from '../model/members.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { knownKeys, optionsObject, wholeNumber } from '../options.js'
import { SmoothWeights } from './smooth-weights.js'
import type { Strategy } from './strategy.js'
import { WeightedDraw } from './weighted-draw.js'

export interface LeastConnectionsOptions {
  /**
   * Power of d choices (Mitzenmacher, "The Power of Two Choices in Randomized Load
   * Balancing", 2001; Envoy's LEAST_REQUEST `choice_count`): compare `choices`
   * upstreams drawn at random instead of scanning them all, O(1) per pick instead of
   * O(n). Absent: a full scan up to 32 eligible upstreams, two choices above (the
   * README's "Overload" measures both).
   * `'all'`: always a full scan.
   */
  choices?: number | 'all'
  /** Seeds the random draws (tests, reproducible runs); default: a random seed per instance. */
  seed?: number
}

/**
 * With `choices` absent, fleets up to this size are scanned: the scan is exact and,
 * there, within a few ns of two choices (bench/least-connections.js); above it the
 * scan's O(n) cost grows past the sampled pick's.
 */
export const SCAN_UP_TO = 32

/**
 * Fewest in-flight requests plus open WebSockets plus queued requests per unit of
 * weight (nginx least_conn, HAProxy leastconn, which keys servers by served +
 * queued: lb_fwlc.c). Counting WebSockets matters for stateful apps: a server
 * holding 1,000 idle sockets is not free (apache/apisix#7301).
 *
 * Full scan: ties go by smooth weighted round robin among the least loaded, as
 * nginx does (ngx_http_upstream_get_least_conn_peer): equal servers share new users
 * instead of the first one taking them all, and when loads stay at zero (sequential
 * requests) weights still decide the split.
 *
 * Sampled (d choices): d upstreams are drawn in proportion to their weights and the
 * one with the least load per unit of weight wins; a tie goes to the first drawn.
 * Envoy draws uniformly and compares weight / (active + 1) instead; drawing by
 * weight and comparing active / weight keeps the split proportional to the weights
 * both at rest (all loads 0: the draw decides) and under load (the comparison
 * evens out active / weight), where Envoy's +1 over-serves the heavier upstream at
 * rest (weights 2:1 split 3:1 with uniform draws).
 */
class LeastConnections implements Strategy {
  readonly name = 'leastConnections'
  #list: readonly Upstream[] = []
  /** Smooth weighted round robin, used only to break ties. */
  readonly #smooth = new SmoothWeights()
  /** Indices of the upstreams tied at the lowest load in the current pick (reused). */
  #ties = new Int32Array(0)
  /** 0: always scan. */
  readonly #choices: number
  /** Scan when at most this many are eligible. */
  readonly #scanUpTo: number
  readonly #draw: WeightedDraw

  constructor (opts: LeastConnectionsOptions) {
    knownKeys('leastConnections', optionsObject('leastConnections', opts), ['choices', 'seed'])
    const all = opts.choices === 'all'
    this.#choices = all ? 0 : wholeNumber('choices', opts.choices, 2, 2, 16)
    this.#scanUpTo = opts.choices === undefined ? SCAN_UP_TO : this.#choices
    this.#draw = new WeightedDraw(wholeNumber('seed', opts.seed, randomInt(2 ** 31), 0, 2 ** 32 - 1))
  }

  update (members: Members): void {
    this.#list = members.eligible
    // Effective weights: an upstream under slow start counts as that much smaller.
    const weights = members.eligibleWeights
    this.#smooth.reset(weights)
    this.#draw.reset(weights)
    this.#ties = new Int32Array(this.#list.length)
  }

  pick (_req: RouteRequest, choice: Choice, aside?: ReadonlySet<Upstream>): Upstream | undefined {
    choice.reason = 'least-load'
    if (this.#choices !== 0 && this.#list.length > this.#scanUpTo) {
      const u = this.#sample(choice, aside)
      if (u !== undefined) return u
    }
    return this.#scan(choice, aside)
  }

  /**
   * d draws; one already tried by this request or set aside is drawn again, up to 2d
   * draws in all. undefined when none could be drawn (the scan decides then).
   */
  #sample (choice: Choice, aside: ReadonlySet<Upstream> | undefined): Upstream | undefined {
    const list = this.#list
    const weights = this.#smooth.weights
    const d = this.#choices
    let best = -1
    let bestLoad = 0
    let found = 0
    for (let k = 0; found < d && k < 2 * d; k++) {
      const i = this.#draw.draw()
      if (i === best) continue
      const u = list[i]!
      if ((choice.tried !== undefined && choice.avoids(u)) || (aside !== undefined && aside.has(u))) continue
      found++
      const load = u.inFlight + u.websockets + u.queue.length
      // load / weight < bestLoad / bestWeight, without dividing.
      if (best === -1 || load * weights[best]! < bestLoad * weights[i]!) {
        best = i
        bestLoad = load
      }
    }
    return best === -1 ? undefined : list[best]
  }

  #scan (choice: Choice, aside: ReadonlySet<Upstream> | undefined): Upstream | undefined {
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
      const load = u.inFlight + u.websockets + u.queue.length
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

export function leastConnections (opts: LeastConnectionsOptions = {}): Strategy {
  return new LeastConnections(opts)
}
