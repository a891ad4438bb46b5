import type { Balancer, UpstreamState } from '@affinity/core'
import { type Client, type ControlKeys } from './control-redis.js'

/** One upstream as an instance sees it. */
export interface ViewUpstream {
  id: string
  url: string
  weight: number
  state: UpstreamState
  inFlight: number
  websockets: number
  /** Users bound to it and seen recently (sticky strategies); null for strategies that bind nobody. */
  boundUsers: number | null
}

/** What each attached instance reports, every `reportMs`, under a key that expires after `viewTtlMs`. */
export interface InstanceView {
  id: string
  /** The instance's clock when it reported (epoch ms). */
  at: number
  reportMs: number
  viewTtlMs: number
  /** Whether the instance was in step with Redis (false: it runs on its own state until Redis is back). */
  online: boolean
  /** The state epoch and the highest version it had applied. */
  epoch: string | null
  version: number
  upstreams: ViewUpstream[]
}

/** A live instance, as `control.instances()` and `affinity status` list it. */
export interface LiveInstance extends InstanceView {
  /** How long ago it reported, measured by Redis's own clock (its key's remaining TTL): no clock skew. */
  ageMs: number
}

export function buildView (balancer: Balancer, fields: Omit<InstanceView, 'upstreams'>): InstanceView {
  const upstreams = balancer.stats().upstreams.map(u => ({
    id: u.id, url: u.url, weight: u.weight, state: u.state, inFlight: u.inFlight, websockets: u.websockets, boundUsers: u.boundUsers ?? null,
  }))
  return { ...fields, upstreams }
}

/**
 * The live instances under `keys`: the set lists who reported, each view key holds
 * its last report until its TTL ends. Ids whose key has expired (an instance gone
 * without detaching) are dropped from the set on the way. Two round trips; the
 * second is one pipeline, which a Cluster sends to the one node of the hash tag.
 */
export async function readInstances (client: Client, keys: ControlKeys): Promise<LiveInstance[]> {
  const ids = await client.zrange(keys.views, 0, -1)
  if (ids.length === 0) return []
  const pipeline = client.pipeline()
  for (const id of ids) {
    pipeline.get(keys.viewPrefix + id)
    pipeline.pttl(keys.viewPrefix + id)
  }
  const replies = (await pipeline.exec()) ?? []
  const live: LiveInstance[] = []
  const gone: string[] = []
  ids.forEach((id, i) => {
    const [err, text] = replies[2 * i] ?? [null, null]
    const [, pttl] = replies[2 * i + 1] ?? [null, -2]
    const view = err === null ? parseView(text) : undefined
    if (view === undefined) {
      gone.push(id)
      return
    }
    const ttl = typeof pttl === 'number' && pttl >= 0 ? pttl : 0
    live.push({ ...view, ageMs: Math.max(0, view.viewTtlMs - ttl) })
  })
  if (gone.length > 0) await client.zrem(keys.views, ...gone).catch(() => {})
  return live.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

function parseView (text: unknown): InstanceView | undefined {
  if (typeof text !== 'string') return undefined
  try {
    const v = JSON.parse(text) as InstanceView
    return v !== null && typeof v === 'object' && typeof v.id === 'string' && Array.isArray(v.upstreams) ? v : undefined
  } catch {
    return undefined
  }
}
