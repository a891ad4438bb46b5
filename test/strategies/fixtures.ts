/**
 * Fixtures for the strategy tests: real Upstream objects (their undici pools are
 * never used, and closed on teardown), a Cluster that pushes Members snapshots to
 * a strategy as the Balancer does, users who come back with their cookie or key,
 * and the table of every strategy with the traits the conformance suite checks.
 */
import type { Test } from 'tap'
import { Pool } from 'undici'
import {
  Balancer, Choice, consistentHash, ipHash, leastConnections, Members, roundRobin, stickyCookie, stickyIp,
  type PickResult, type RouteRequest, type Strategy,
} from '@affinity/core'
import { isPromise, Upstream } from '@affinity/core/internal'

export const SECRET = 'conformance-secret-0123456789-abcdefghij'
export const OLD_SECRET = 'old-rotation-secret-0123456789-abcdefghij'
export const NEW_SECRET = 'new-rotation-secret-0123456789-abcdefghij'

// ---------------------------------------------------------------------------
// Harness: a cluster of upstreams around one strategy, and users with cookie jars.
// ---------------------------------------------------------------------------

export interface Spec { id: string, weight?: number }
export const specs = (...ids: string[]): Spec[] => ids.map(id => ({ id }))

/** The same id always gets the same URL, so two "instances" describe the same servers. */
export const ports = new Map<string, number>()
export function urlOf (id: string): string {
  let port = ports.get(id)
  if (port === undefined) { port = 31001 + ports.size; ports.set(id, port) }
  return `http://127.0.0.1:${port}`
}

export function settle (r: PickResult): Upstream | undefined {
  if (isPromise(r)) throw new Error('expected a synchronous pick (in-memory state only)')
  return r
}

/** What the Balancer does around a strategy, minus forwarding and health checks. */
export class Cluster {
  readonly byId = new Map<string, Upstream>()
  readonly totals = { load: 0 }
  readonly strategy: Strategy
  #version = 0
  readonly #pools: Pool[] = []

  constructor (t: Test, strategy: Strategy, list: readonly Spec[]) {
    this.strategy = strategy
    for (const s of list) this.#create(s)
    this.sync()
    t.teardown(async () => {
      await strategy.close?.()
      await Promise.all(this.#pools.map(p => p.close()))
    })
  }

  get (id: string): Upstream {
    const u = this.byId.get(id)
    if (u === undefined) throw new Error(`no upstream ${id}`)
    return u
  }

  sync (): void {
    this.strategy.update(new Members(this.byId.values(), ++this.#version, this.totals))
  }

  add (id: string, weight = 1): void { this.#create({ id, weight }); this.sync() }
  remove (id: string): void { const u = this.get(id); u.removed = true; this.byId.delete(id); this.sync() }
  down (id: string): void { this.get(id).healthy = false; this.sync() }
  up (id: string): void { this.get(id).healthy = true; this.sync() }
  drain (id: string): void { this.get(id).draining = true; this.sync() }
  undrain (id: string): void { this.get(id).draining = false; this.sync() }

  choose (user: User): Choice {
    const req = user.request()
    const choice = new Choice(req)
    choice.upstream = settle(this.strategy.pick(req, choice))
    user.accept(choice)
    return choice
  }

  /** The forwarder's retry: the failed upstream joins `choice.tried` and the same choice is re-picked. */
  repick (user: User, choice: Choice, failed: Upstream): Upstream | undefined {
    (choice.tried ??= []).push(failed)
    choice.upstream = settle(this.strategy.pick(choice.request, choice))
    user.accept(choice)
    return choice.upstream
  }

  pick (user: User): string | undefined {
    return this.choose(user).upstream?.id
  }

  #create ({ id, weight = 1 }: Spec): void {
    const url = urlOf(id)
    const pool = new Pool(new URL(url).origin)
    this.#pools.push(pool)
    this.byId.set(id, new Upstream(url, id, weight, pool))
  }
}

/** A client: a number, plus a cookie jar that keeps whatever Set-Cookie the balancer sent. */
export class User {
  readonly jar: Record<string, string> = {}
  readonly entry: Entry
  readonly k: number
  readonly over: Partial<RouteRequest>

  constructor (entry: Entry, k: number, over: Partial<RouteRequest> = {}) {
    this.entry = entry
    this.k = k
    this.over = over
  }

  request (): RouteRequest {
    return { ...this.entry.request(this), ...this.over }
  }

  accept (choice: Choice): void {
    const sc = choice.setCookie
    if (sc === undefined) return
    const semi = sc.indexOf(';')
    const pair = semi === -1 ? sc : sc.slice(0, semi)
    const eq = pair.indexOf('=')
    this.jar[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
}

export const users = (entry: Entry, n: number, from = 0): User[] => Array.from({ length: n }, (_, i) => new User(entry, from + i))

/** `u`'s request through a real Balancer (which never connects: only `choose` is called); `u` keeps any cookie. */
export function chooseOn (b: Balancer, u: User): Choice {
  const r = b.choose(u.request())
  if (isPromise(r)) throw new Error('expected a synchronous choice')
  u.accept(r)
  return r
}

export function tally (ids: ReadonlyArray<string | undefined>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const id of ids) out[String(id)] = (out[String(id)] ?? 0) + 1
  return out
}

export function base (u: User): RouteRequest {
  return { method: 'GET', url: '/', headers: {}, ip: undefined, cookies: { ...u.jar } }
}
export const ipOf = (k: number): string => `10.${(k >>> 16) & 255}.${(k >>> 8) & 255}.${k & 255}`
export const byJar = (u: User): RouteRequest => base(u)
export const byIp = (u: User): RouteRequest => ({ ...base(u), ip: ipOf(u.k) })
export const byHeader = (u: User): RouteRequest => ({ ...base(u), headers: { 'x-user': `user-${u.k}` } })

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

export interface Traits {
  /** Binds a user to the upstream it was first placed on (cookie, stick table). */
  sticky: boolean
  /** Placement is a pure function of the request's key and the membership. */
  hashing: boolean
  /** Keeps no per-user state at all. */
  stateless: boolean
  /** A second instance with the same ids and options agrees, with no shared state. */
  portable: boolean
  /** Sets the balancer cookie. */
  cookie: boolean
  /** Hashing only: 'exact' = removal/addition moves only the keys on/onto that upstream. */
  movement?: 'exact' | 'loose'
}

export interface Entry {
  name: string
  make: () => Strategy
  traits: Traits
  request: (u: User) => RouteRequest
}

export const plain: Traits = { sticky: false, hashing: false, stateless: true, portable: false, cookie: false }
export const sticky: Traits = { sticky: true, hashing: false, stateless: false, portable: false, cookie: false }
export const hashing: Traits = { sticky: false, hashing: true, stateless: true, portable: true, cookie: false, movement: 'exact' }

export const TABLE: Entry[] = [
  { name: 'roundRobin', make: () => roundRobin(), traits: plain, request: byJar },
  { name: 'leastConnections', make: () => leastConnections(), traits: plain, request: byJar },
  { name: 'stickyCookie', make: () => stickyCookie({ secret: SECRET }), traits: { ...sticky, portable: true, cookie: true }, request: byJar },
  { name: 'stickyIp', make: () => stickyIp(), traits: sticky, request: byIp },
  { name: 'consistentHash ring', make: () => consistentHash({ key: { header: 'x-user' }, algorithm: 'ring' }), traits: hashing, request: byHeader },
  { name: 'consistentHash maglev', make: () => consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' }), traits: { ...hashing, movement: 'loose' }, request: byHeader },
  { name: 'consistentHash ring balanceFactor 1.25', make: () => consistentHash({ key: { header: 'x-user' }, balanceFactor: 1.25 }), traits: hashing, request: byHeader },
  { name: 'ipHash', make: () => ipHash(), traits: hashing, request: byIp },
]

export const entry = (name: string): Entry => {
  const e = TABLE.find(x => x.name === name)
  if (e === undefined) throw new Error(name)
  return e
}

export const FOUR = ['a', 'b', 'c', 'd']
export const FIVE = ['a', 'b', 'c', 'd', 'e']

