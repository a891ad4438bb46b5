// The storm's figures (bench/storm.js), from the users' records, the survivors' own
// concurrency timelines and the balancer's stats.
import { percentile, round } from '../numbers.js'

const QUEUE_FULL = 'The upstream is at capacity and no more requests can wait for it'
const QUEUE_TIMEOUT = 'The upstream had no capacity for this request in time'

function latency (records) {
  const xs = Float64Array.from(records, r => r.doneAt - r.sentAt)
  return { n: xs.length, p50: round(percentile(xs, xs.length, 50), 1), p99: round(percentile(xs, xs.length, 99), 1) }
}

export function analyse ({ name, records, marks, cpu, stats, upstreamStats, victim, downAt, capacity, users, factor }) {
  const inWindow = (r, from, to) => r.sentAt >= from && r.sentAt < to
  // Where each user was pinned when the victim died: the last upstream that served it before.
  const homeAtKill = new Map()
  for (const r of records) if (r.doneAt < marks.kill && r.servedBy !== undefined) homeAtKill.set(r.user, r.servedBy)
  const victimUsers = new Set([...homeAtKill].filter(([, h]) => h === victim).map(([u]) => u))
  const own = records.filter(r => r.status !== 0 && homeAtKill.has(r.user) && !victimUsers.has(r.user))
  const before = latency(own.filter(r => inWindow(r, marks.before, marks.kill)))
  const after = latency(own.filter(r => inWindow(r, marks.kill, marks.end)))

  const toEpoch = (t) => t + marks.epochOffset
  const maxIn = (from, to) => Math.max(0, ...upstreamStats.flatMap(s => s.timeline.filter(([at]) => at >= toEpoch(from) - 100 && at < toEpoch(to)).map(([, n]) => n)))

  const finalHome = new Map()
  const repinned = new Set()
  for (const r of records) {
    if (r.servedBy === undefined) continue
    finalHome.set(r.user, r.servedBy)
    if (r.sentAt >= marks.kill && victimUsers.has(r.user) && r.servedBy !== victim) repinned.add(r.user)
  }
  const perSurvivor = upstreamStats.map(s => [...finalHome.values()].filter(h => h === s.name).length)

  const errors = { victim: 0, queueFull: 0, queueTimeout: 0, other: 0, client: 0, otherKinds: {} }
  for (const r of records) {
    if (r.status === 0) { errors.client++; continue }
    if (r.status < 500) continue
    if (r.message === QUEUE_FULL) errors.queueFull++
    else if (r.message === QUEUE_TIMEOUT) errors.queueTimeout++
    else if (r.pinned === victim && r.sentAt < downAt) errors.victim++
    else {
      errors.other++
      const kind = `${r.status} ${r.message}`
      errors.otherKinds[kind] = (errors.otherKinds[kind] ?? 0) + 1
    }
  }

  const answered = (from, to) => records.filter(r => r.status !== 0 && r.doneAt >= from && r.doneAt < to)
  const ok = (from, to) => answered(from, to).filter(r => r.status === 200).length
  const cpuUs = (a, b) => (b.user + b.system) - (a.user + a.system)
  return {
    name,
    own: { before, after, ratio: round(after.p99 / before.p99, 2) },
    victimUsers: latency(records.filter(r => r.status !== 0 && victimUsers.has(r.user) && inWindow(r, marks.kill, marks.end))),
    survivorMax: { before: maxIn(marks.before, marks.kill), after: maxIn(marks.kill, marks.end), capacity },
    repinned: { count: repinned.size, of: victimUsers.size, perSurvivor, cap: Math.ceil(factor * users / upstreamStats.length) },
    errors,
    retries: stats.retries,
    outcomes: Object.fromEntries(stats.upstreams.map(u => [u.id, { queue_full: u.outcomes.queue_full, queue_timeout: u.outcomes.queue_timeout, connect_error: u.outcomes.connect_error, reset: u.outcomes.reset, timeout: u.outcomes.timeout }])),
    rps: {
      before: round(ok(marks.before, marks.kill) / ((marks.kill - marks.before) / 1000), 0),
      after: round(ok(marks.kill, marks.end) / ((marks.end - marks.kill) / 1000), 0),
    },
    cpuPerRequest: {
      before: round(cpuUs(cpu.before, cpu.kill) / Math.max(1, answered(marks.before, marks.kill).length), 1),
      after: round(cpuUs(cpu.kill, cpu.end) / Math.max(1, answered(marks.kill, marks.end).length), 1),
    },
  }
}
