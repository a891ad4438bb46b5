import { Choice } from '../model/choice.js'
import { Members } from '../model/members.js'
import type { Remap } from '../model/remap.js'
import { NO_TRANSPORT, Upstream } from '../model/upstream.js'
import type { HashConfig } from './consistent-hash.js'
import { roundRobin } from './round-robin.js'

/** The sizes from which a ConsistentHash applies changes in slices: ring points, Maglev upstreams. */
export interface SliceFrom { ring: number, maglev: number }

/** What warmUp drives: a ConsistentHash that slices every change. */
interface Scratch {
  update (members: Members): void
  remapLater (from: Members, to: Members): Promise<Remap> | undefined
  remember (hash: number): void
  pickHash (hash: number, choice: Choice): Upstream | undefined
  finish (): void
}

const FLEET = 48
const ROUNDS = 48
const VNODES = 64
/** A prime, as Maglev tables are. */
const TABLE_SIZE = 4099
const warmed = new Set<string>()

/**
 * The first changes a process applies in slices would run code V8 has not
 * optimised yet: at 1,000 upstreams the first ring slices took 7–12 ms and the first
 * deferred remaps 10–22 ms where warm ones take ≤ 3 and ≤ 5 (3 ms slices;
 * `node bench/membership.js`, its warm-up column). So when a ConsistentHash first
 * reaches that scale, the same code runs once on a scratch fleet of FLEET upstreams
 * that slices every change: adds, drains, weight changes and removes, each with its
 * remap over sampled keys and picks (bounded loads as configured). Once per process
 * and kind of table, within the call that grew the fleet there (the initial build
 * of a 1,000-upstream ring takes far longer); nothing of it is kept.
 */
export function warmUp (config: HashConfig, make: (config: HashConfig, sliceFrom: SliceFrom) => Scratch): void {
  const kind = `${config.algorithm}${config.balanceFactor > 0 ? '+bounded' : ''}`
  if (warmed.has(kind)) return
  warmed.add(kind)
  // Its own fallback (the app's must not see this fleet), and a small table or ring:
  // the code is the same, the work per change a fraction.
  const scratch = make({ ...config, fallback: roundRobin(), vnodes: VNODES, tableSize: TABLE_SIZE }, { ring: 0, maglev: 0 })
  const fleet = new Map<string, Upstream>()
  const join = (i: number): void => {
    const id = `warm-up-${i}`
    fleet.set(id, new Upstream(`http://127.0.0.1:${1024 + i}`, id, 1, NO_TRANSPORT))
  }
  for (let i = 0; i < FLEET; i++) join(i)
  let version = 0
  let members = new Members(fleet.values(), version++)
  scratch.update(members)
  const choice = new Choice({ method: 'GET', url: '/', headers: {}, ip: '127.0.0.1', cookies: {}, protocol: 'http' } as never)
  let hash = 0x9e3779b9
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < 64; k++) {
      hash = Math.imul(hash ^ (hash >>> 15), 0x2c1b3c6d) >>> 0
      scratch.remember(hash)
      scratch.pickHash(hash, choice)
    }
    const u = [...fleet.values()][round % fleet.size]!
    switch (round % 4) {
      case 0: fleet.delete(u.id); break
      case 1: join(FLEET + round); break
      case 2: u.draining = !u.draining; break
      default: u.weight = u.weight === 1 ? 2 : 1
    }
    const next = new Members(fleet.values(), version++)
    void scratch.remapLater(members, next)
    scratch.update(next)
    scratch.finish()
    members = next
  }
}
