import type { Balancer, UpstreamInfo } from '@affinity/core'

/**
 * The operator state of one upstream as stored (JSON in the state hash): only what
 * operators set, never health. `v` is the version of the write that produced it.
 *   d  drained (true) or undrained (false) by an operator
 *   w  weight set by an operator (a string: it crosses Lua's cjson exactly)
 *   u  added by an operator, with this URL (and weight `w`)
 *   r  removed by an operator (a tombstone: an instance whose configuration lists it removes it too)
 */
export interface WireEntry {
  v: number
  d?: boolean
  w?: string
  u?: string
  r?: boolean
}

/** The operator state of one upstream, as `control.state()` reports it. */
export interface ControlEntry {
  /** The version of the last operation on it. */
  version: number
  drained?: boolean
  weight?: number
  /** Added by an operator, with this URL. */
  url?: string
  /** Removed by an operator. */
  removed?: boolean
}

export type Operation =
  | { op: 'drain' }
  | { op: 'undrain' }
  | { op: 'weight', weight: number }
  | { op: 'add', url: string, weight: number }
  | { op: 'remove' }

/** How an operation changes an entry: the script's mode and the fields it writes. */
export function patchOf (o: Operation): { mode: 'merge' | 'replace', fields: Omit<WireEntry, 'v'> } {
  switch (o.op) {
    case 'drain': return { mode: 'merge', fields: { d: true } }
    case 'undrain': return { mode: 'merge', fields: { d: false } }
    case 'weight': return { mode: 'merge', fields: { w: String(o.weight) } }
    case 'add': return { mode: 'replace', fields: { u: o.url, w: String(o.weight) } }
    case 'remove': return { mode: 'replace', fields: { r: true } }
  }
}

/** What the script does to an entry, done locally while Redis is unreachable (version unchanged). */
export function applyPatch (entry: WireEntry | undefined, o: Operation): WireEntry {
  const { mode, fields } = patchOf(o)
  const v = entry?.v ?? 0
  return mode === 'merge' && entry !== undefined ? { ...entry, ...fields, v } : { ...fields, v }
}

/** The operation a balancer event stands for (the balancer emits them as it applies each one). */
export function operationOf (event: string, info: UpstreamInfo): Operation | undefined {
  switch (event) {
    case 'draining': return { op: 'drain' }
    case 'undrained': return { op: 'undrain' }
    case 'weight': return { op: 'weight', weight: info.weight }
    case 'added': return { op: 'add', url: info.url, weight: info.weight }
    case 'removed': return { op: 'remove' }
    default: return undefined
  }
}

/** A stored entry, or undefined when it is not one (written by something else). */
export function parseEntry (text: unknown): WireEntry | undefined {
  if (typeof text !== 'string' || text === '') return undefined
  try {
    const e = JSON.parse(text) as WireEntry
    return e !== null && typeof e === 'object' && typeof e.v === 'number' ? e : undefined
  } catch {
    return undefined
  }
}

/** The entry without its version: what a compare-and-set writes. */
export function fieldsOf (e: WireEntry): string {
  const { v: _v, ...fields } = e
  return JSON.stringify(fields)
}

export function publicEntry (e: WireEntry): ControlEntry {
  const out: ControlEntry = { version: e.v }
  if (e.d !== undefined) out.drained = e.d
  if (e.w !== undefined) out.weight = Number(e.w)
  if (e.u !== undefined) out.url = e.u
  if (e.r === true) out.removed = true
  return out
}

/**
 * Brings `balancer` to `entry` for upstream `id`, doing only what differs (each
 * balancer method is idempotent, and emits nothing when nothing changes). With
 * `membership: false` an entry's add and remove are left alone: the upstream's
 * presence belongs to a membership source (DNS), which would add it straight back.
 * A bad entry (a URL or weight the balancer refuses) is reported, never thrown.
 */
export function converge (balancer: Balancer, id: string, entry: WireEntry, present: UpstreamInfo | undefined, membership = true): Error | undefined {
  try {
    let info = present
    if (entry.r === true) {
      if (info !== undefined && membership) balancer.remove(id)
      return undefined
    }
    if (info === undefined) {
      if (entry.u === undefined || !membership) return undefined
      info = balancer.add({ url: entry.u, id, weight: entry.w === undefined ? 1 : Number(entry.w) })
    }
    if (entry.w !== undefined && Number(entry.w) !== info.weight) balancer.setWeight(id, Number(entry.w))
    // A drained upstream that is also down reports 'down': drain() is idempotent, so it is asked anyway.
    if (entry.d === true && info.state !== 'draining') balancer.drain(id).catch(() => {})
    if (entry.d === false) balancer.undrain(id)
    return undefined
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err))
  }
}
