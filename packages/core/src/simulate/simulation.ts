import { createBalancer, type Balancer } from '../balancer/balancer.js'
import type { UpstreamOptions } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { isPromise } from '../model/choice.js'
import { loadSummary, type LoadSummary } from './load.js'
import { movementOf, type Movement } from './movement.js'
import {
  checkHashSettings, checkKeys, checkSeed, DEFAULT_KEYS, DEFAULT_SEED, resolveScenarios,
  type Scenario, type SimulationOptions, type UpstreamSpec,
} from './options.js'
import type { Population, Session } from './population.js'
import { createStrategy, describeStrategy, populationFor, type HashSettings, type StrategyName } from './strategy.js'

export interface ScenarioResult {
  name: string
  added: UpstreamSpec[]
  removed: string[]
  /** Load on the upstreams after the change. */
  load: LoadSummary
  movement: Movement
}

export interface SimulationResult {
  strategy: StrategyName
  /** The strategy and the options that shape placement, in one line. */
  description: string
  /** Who sends the requests, in one line. */
  population: string
  /** 'users' for sticky and hashing strategies, 'requests' for stateless ones. */
  unit: 'users' | 'requests'
  keys: number
  seed: number
  hold: boolean
  hash: HashSettings
  upstreams: UpstreamSpec[]
  /** Load on the starting upstreams. */
  load: LoadSummary
  scenarios: ScenarioResult[]
}

interface Run { ids: string[], before: Int32Array, after?: Int32Array }

/**
 * Replays a synthetic population through a real balancer (createBalancer with
 * the real strategy; only `choose` is called, so nothing connects), before and
 * after each membership change, and reports load and movement. Each scenario
 * starts from a fresh balancer, so each sees the same starting placement.
 */
export async function simulate (options: SimulationOptions): Promise<SimulationResult> {
  const strategy = options.strategy
  const keys = checkKeys(options.keys ?? DEFAULT_KEYS)
  const seed = checkSeed(options.seed ?? DEFAULT_SEED)
  const hash = checkHashSettings(strategy, options.hash)
  const hold = options.hold ?? hash.balanceFactor !== undefined
  const upstreams = options.upstreams.map(u => ({ ...u }))
  const scenarios = resolveScenarios(upstreams, options.scenarios)
  const population = populationFor(strategy, keys, seed)
  const start = (): Balancer => createBalancer({
    upstreams: upstreams.map(toOptions),
    strategy: createStrategy(strategy, hash, keys),
    passive: false,
  })

  const runs: Run[] = []
  for (const scenario of scenarios) runs.push(await run(start(), population, hold, upstreams, scenario))
  if (runs.length === 0) runs.push(await run(start(), population, hold, upstreams, undefined))
  const { ids, before } = runs[0]!

  return {
    strategy,
    description: describeStrategy(strategy, hash),
    population: population.description,
    unit: population.unit,
    keys,
    seed,
    hold,
    hash,
    upstreams,
    load: loadSummary(upstreams, ids, before),
    scenarios: scenarios.map((scenario, k) => {
      const r = runs[k]!
      const after = [...upstreams.filter(u => !scenario.remove.includes(u.id)), ...scenario.add]
      return {
        name: scenario.name,
        added: scenario.add,
        removed: scenario.remove,
        load: loadSummary(after, r.ids, r.after!),
        movement: movementOf(r.ids, upstreams, after, r.before, r.after!),
      }
    }),
  }
}

const toOptions = ({ id, url, weight }: UpstreamSpec): UpstreamOptions => ({ id, url, weight })

/** One balancer: every entry once, then the change (through add/remove), then every entry again. */
async function run (balancer: Balancer, population: Population, hold: boolean, upstreams: readonly UpstreamSpec[], scenario: Scenario | undefined): Promise<Run> {
  const ids = [...upstreams.map(u => u.id), ...(scenario?.add.map(u => u.id) ?? [])]
  const index = new Map(ids.map((id, i) => [id, i]))
  try {
    const session = population.session()
    const before = await pass(balancer, session, population.size, index, hold)
    if (scenario === undefined) return { ids, before }
    for (const id of scenario.remove) balancer.remove(id)
    for (const u of scenario.add) balancer.add(toOptions(u))
    // At fleet scale a hash strategy applies the change over a few turns: compare the settled placement.
    await balancer.strategy.settled?.()
    const after = await pass(balancer, session, population.size, index, hold)
    return { ids, before, after }
  } finally {
    await balancer.close()
  }
}

/**
 * Every entry sends one request, in order; returns where each went. With `hold`,
 * each request stays open until the pass ends — counted as an open WebSocket,
 * exactly as the forwarder counts one (socketOpened / socketClosed in
 * balancer.ts) — so leastConnections and bounded loads see the load built so far.
 */
async function pass (balancer: Balancer, session: Session, size: number, index: ReadonlyMap<string, number>, hold: boolean): Promise<Int32Array> {
  const out = new Int32Array(size)
  const held = new Map<Upstream, number>()
  const totals = balancer.members.totals
  for (let i = 0; i < size; i++) {
    const r = balancer.choose(session.request(i))
    const choice = isPromise(r) ? await r : r
    session.accept(i, choice)
    const u = choice.upstream
    out[i] = u === undefined ? -1 : index.get(u.id)!
    if (hold && u !== undefined) {
      u.websockets++
      totals.load++
      held.set(u, (held.get(u) ?? 0) + 1)
    }
  }
  for (const [u, n] of held) {
    u.websockets -= n
    totals.load -= n
  }
  return out
}
