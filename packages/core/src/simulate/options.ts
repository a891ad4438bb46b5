import type { HashSettings, StrategyName } from './strategy.js'

export interface UpstreamSpec {
  /** The hash identity (what consistent hashing and cookies name). */
  id: string
  /** Never connected to: the simulator only asks the balancer to choose. */
  url: string
  weight: number
}

/** One membership change, applied to the starting upstreams. */
export interface ScenarioSpec {
  /** How many upstreams to add (ids s<N+1>, s<N+2>…), or their ids (or URLs); weight 1. */
  add?: number | readonly string[]
  /** Ids of upstreams to remove. */
  remove?: readonly string[]
}

export interface SimulationOptions {
  strategy: StrategyName
  upstreams: readonly UpstreamSpec[]
  /** Users (keys, clients), or requests for the stateless strategies. Default 10,000. */
  keys?: number
  /** Seeds the PRNG that draws user ids and client addresses. Default 1. */
  seed?: number
  /**
   * Each user keeps one request open (a WebSocket, a long poll) while the others
   * arrive, so load-aware placement (leastConnections, sticky `assign`, bounded
   * loads) sees it. Default: on with `balanceFactor`, else off.
   */
  hold?: boolean
  /** consistentHash only. */
  hash?: HashSettings
  /** Default: remove the first upstream; separately, add one. */
  scenarios?: readonly ScenarioSpec[]
}

export interface Scenario {
  /** "remove s1", "add s11", "remove a, b + add s4". */
  name: string
  add: UpstreamSpec[]
  remove: string[]
}

export const DEFAULT_KEYS = 10_000
export const DEFAULT_SEED = 1
export const MAX_UPSTREAMS = 1000
export const MAX_KEYS = 5_000_000

/** A wrong option: the CLI prints the message with a pointer to --help and exits 2. */
export class SimulationOptionError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'SimulationOptionError'
  }
}

function fail (message: string): never {
  throw new SimulationOptionError(message)
}

/** An id or a URL from the command line; a URL is its own id, as in the balancer. */
function upstreamOf (entry: string, position: number, weight = 1): UpstreamSpec {
  const id = entry.trim()
  if (id.length === 0) fail('an upstream id is empty')
  const url = /^https?:\/\//i.test(id) ? id : `http://127.0.0.1:${10_001 + position}`
  return { id, url, weight }
}

/** `n` upstreams s1…sN, or the given ids (or URLs), with optional weights in the same order. */
export function upstreamList (spec: number | readonly string[], weights?: readonly number[]): UpstreamSpec[] {
  const ids = typeof spec === 'number' ? countedIds(spec, new Set(), 1) : [...spec]
  if (ids.length === 0) fail('at least one upstream is needed')
  if (ids.length > MAX_UPSTREAMS) fail(`at most ${MAX_UPSTREAMS} upstreams`)
  if (weights !== undefined && weights.length !== ids.length) {
    fail(`${weights.length} weights for ${ids.length} upstreams: give one weight per upstream`)
  }
  for (const w of weights ?? []) if (!(Number.isFinite(w) && w > 0)) fail(`weight ${w}: weights must be numbers > 0`)
  const list = ids.map((id, i) => upstreamOf(id, i, weights?.[i]))
  const seen = new Set<string>()
  for (const u of list) {
    if (seen.has(u.id)) fail(`upstream ${u.id} is listed twice`)
    seen.add(u.id)
  }
  return list
}

function countedIds (n: number, taken: ReadonlySet<string>, from: number): string[] {
  if (!Number.isInteger(n) || n < 1 || n > MAX_UPSTREAMS) fail(`expected a number of upstreams from 1 to ${MAX_UPSTREAMS}, got ${n}`)
  const ids: string[] = []
  for (let k = from; ids.length < n; k++) if (!taken.has(`s${k}`)) ids.push(`s${k}`)
  return ids
}

/** Resolves scenarios against the starting upstreams: ids checked, added upstreams named. */
export function resolveScenarios (upstreams: readonly UpstreamSpec[], specs?: readonly ScenarioSpec[]): Scenario[] {
  const list = specs ?? [{ remove: [upstreams[0]!.id] }, { add: 1 }]
  const ids = new Set(upstreams.map(u => u.id))
  return list.map(spec => {
    const remove = [...new Set(spec.remove ?? [])]
    for (const id of remove) if (!ids.has(id)) fail(`cannot remove ${id}: no such upstream (${[...ids].join(', ')})`)
    if (remove.length >= upstreams.length) fail('a scenario cannot remove every upstream')
    const addIds = spec.add === undefined ? [] : typeof spec.add === 'number' ? countedIds(spec.add, ids, upstreams.length + 1) : [...spec.add]
    const add = addIds.map((id, i) => upstreamOf(id, upstreams.length + i))
    const seen = new Set(ids)
    for (const u of add) {
      if (seen.has(u.id)) fail(`cannot add ${u.id}: the id is already in use`)
      seen.add(u.id)
    }
    if (add.length === 0 && remove.length === 0) fail('a scenario must add or remove at least one upstream')
    const name = [
      remove.length > 0 ? `remove ${remove.join(', ')}` : '',
      add.length > 0 ? `add ${add.map(u => u.id).join(', ')}` : '',
    ].filter(Boolean).join(' + ')
    return { name, add, remove }
  })
}

export function checkKeys (keys: number): number {
  if (!Number.isInteger(keys) || keys < 1 || keys > MAX_KEYS) fail(`expected a number of keys from 1 to ${MAX_KEYS.toLocaleString('en-US')}, got ${keys}`)
  return keys
}

export function checkSeed (seed: number): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail(`expected a seed from 0 to 4294967295, got ${seed}`)
  return seed
}

/** Hash settings apply to consistentHash only; anywhere else they would silently do nothing. */
export function checkHashSettings (strategy: StrategyName, hash: HashSettings | undefined): HashSettings {
  const given = Object.entries(hash ?? {}).filter(([, v]) => v !== undefined).map(([k]) => k)
  if (strategy !== 'consistentHash' && given.length > 0) fail(`${given.join(', ')}: consistentHash options, not ${strategy}'s`)
  return hash ?? {}
}
