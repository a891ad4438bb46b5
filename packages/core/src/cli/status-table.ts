import type { ControlLike, LiveInstanceLike } from './control-load.js'
import { table } from './table.js'

type StoredState = Awaited<ReturnType<ControlLike['state']>>

/** Milliseconds as a person reads an age: 350 ms, 1.2 s, 14 s. */
function age (ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`
  return `${Math.round(ms / 1000)} s`
}

/** The operator state as one line: 'S2 drained (v3); S4 added, weight 2 (v5)'. */
function stateLine (state: StoredState): string {
  const parts = Object.entries(state.upstreams).sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, e]) => {
    const what: string[] = []
    if (e.removed === true) what.push('removed')
    if (e.url !== undefined) what.push(`added (${e.url})`)
    if (e.drained === true) what.push('drained')
    if (e.drained === false) what.push('undrained')
    if (e.weight !== undefined) what.push(`weight ${e.weight}`)
    return `${id} ${what.join(', ')} (v${e.version})`
  })
  return parts.length === 0 ? 'none' : parts.join('; ')
}

/**
 * `affinity status` for a person: who is live, how fresh each report is, and per
 * instance and upstream the state, weight, requests in flight and bound users;
 * then where instances disagree on an upstream's state (an instance that missed an
 * operation, or one still ramping a DNS change), which is what to look at first.
 */
export function statusReport (name: string, where: string, state: StoredState, instances: LiveInstanceLike[]): string {
  const lines: string[] = []
  lines.push(`Control '${name}' on ${where}: ${instances.length} live instance${instances.length === 1 ? '' : 's'}, operator state version ${state.version}`)
  lines.push(`Operator state: ${stateLine(state)}`)
  lines.push('')
  if (instances.length === 0) {
    lines.push('No live instance: none reported within its view\'s TTL.')
    return lines.join('\n') + '\n'
  }
  const rows: string[][] = []
  for (const inst of instances) {
    const sync = inst.online ? `v${inst.version}` : 'OFFLINE'
    if (inst.upstreams.length === 0) rows.push([inst.id, age(inst.ageMs), sync, '(none)', '', '', '', ''])
    inst.upstreams.forEach((u, i) => {
      rows.push([
        i === 0 ? inst.id : '', i === 0 ? age(inst.ageMs) : '', i === 0 ? sync : '',
        u.id, u.state, String(u.weight), String(u.inFlight), u.boundUsers === null ? '—' : String(u.boundUsers),
      ])
    })
  }
  lines.push(...table(['instance', 'reported', 'state v', 'upstream', 'state', 'weight', 'in flight', 'bound users'], rows, 'lrlllrrr'))
  const offline = instances.filter(i => !i.online).map(i => i.id)
  if (offline.length > 0) lines.push('', `OFFLINE (cut off from Redis, running on their own state): ${offline.join(', ')}`)
  const split = disagreements(instances)
  lines.push('', split.length === 0 ? 'All instances agree on every upstream\'s state.' : `Instances disagree:\n${split.map(s => `  ${s}`).join('\n')}`)
  return lines.join('\n') + '\n'
}

/** 'S2: draining on a, b; up on c' for every upstream whose state differs between instances (or that some do not have). */
function disagreements (instances: LiveInstanceLike[]): string[] {
  const byUpstream = new Map<string, Map<string, string[]>>()
  for (const inst of instances) {
    for (const u of inst.upstreams) {
      let states = byUpstream.get(u.id)
      if (states === undefined) byUpstream.set(u.id, states = new Map())
      const list = states.get(u.state) ?? []
      list.push(inst.id)
      states.set(u.state, list)
    }
  }
  const out: string[] = []
  for (const [id, states] of [...byUpstream].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const have = [...states.values()].reduce((n, l) => n + l.length, 0)
    if (states.size === 1 && have === instances.length) continue
    const parts = [...states].map(([state, ids]) => `${state} on ${ids.join(', ')}`)
    if (have < instances.length) parts.push(`absent on ${instances.filter(i => !i.upstreams.some(u => u.id === id)).map(i => i.id).join(', ')}`)
    out.push(`${id}: ${parts.join('; ')}`)
  }
  return out
}
