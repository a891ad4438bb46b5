// Comparisons between targets: ratios of their figures, and the checks against the targets
// Affinity sets itself (figures are printed, never asserted: a missed target is reported).
import { median, round } from '../numbers.js'

/**
 * a ÷ b for one figure: with paired (interleaved) rounds, the median of the per-round ratios
 * (round k of a and round k of b ran within a minute of each other, so a slow spell of the
 * machine cancels out); otherwise the ratio of the medians.
 */
function ratio (a, b, key, paired) {
  if (a === undefined || b === undefined || a[key] === undefined || b[key] === undefined || b[key] === 0) return undefined
  if (paired && a.rounds?.length === b.rounds?.length && a.rounds.length > 0) {
    const xs = a.rounds.map((r, k) => (r[key] === undefined || !b.rounds[k][key] ? undefined : r[key] / b.rounds[k][key])).filter(x => x !== undefined)
    if (xs.length === a.rounds.length) return round(median(xs), 3)
  }
  return round(a[key] / b[key], 3)
}

/** Lowest and highest per-round ratio (paired rounds only). */
function spread (a, b, key, paired) {
  if (!paired || a?.rounds === undefined || a.rounds.length !== b?.rounds?.length) return undefined
  const xs = a.rounds.map((r, k) => (b.rounds[k][key] ? r[key] / b.rounds[k][key] : undefined)).filter(x => x !== undefined)
  return xs.length === 0 ? undefined : [round(Math.min(...xs), 2), round(Math.max(...xs), 2)]
}

function ratios (a, b, ref, paired) {
  if (a === undefined || b === undefined || b.rps === undefined || a.rps === undefined) return undefined
  const r = (key) => ratio(a, b, key, paired)
  return { ref, rps: r('rps'), rpsRounds: spread(a, b, 'rps', paired), p50: r('p50'), p99: r('p99'), cpuPerReq: r('cpuUsPerReq') }
}

/** Which nginx figure a row is compared with: by strategy kind, or the faster of the two. */
function nginxFor (row, byName) {
  const hash = byName.get('nginx-hash')
  const ip = byName.get('nginx-iphash')
  const has = (r) => r !== undefined && r.rps !== undefined
  if (row.kind === 'hash' && has(hash)) return hash
  if (row.kind === 'ip' && has(ip)) return ip
  if (has(hash) && has(ip)) return hash.rps >= ip.rps ? hash : ip
  return has(hash) ? hash : has(ip) ? ip : undefined
}

/**
 * Sets each measured row's `vs` (its ratios to the other targets) and returns the target
 * checks. The Express targets are checked against express-hpm (keep-alive agent: the strict
 * baseline); the line against express-hpm-noagent (http-proxy-middleware's defaults, what
 * users get out of the box) is informational: it is not counted as a PASS or a FAIL.
 */
export function compare (rows, paired) {
  const byName = new Map(rows.map(r => [r.name, r]))
  const vs = (r, name) => ratios(r, byName.get(name), name, paired)
  for (const r of rows) {
    if (r.rps === undefined) continue
    r.vs = {}
    if (r.group === 'fastify') r.vs.baseline = vs(r, 'fastify-proxy')
    if (r.group === 'express') {
      r.vs.baseline = vs(r, 'express-hpm')
      r.vs.defaults = vs(r, 'express-hpm-noagent')
      r.vs.fastify = vs(r, `fastify-${r.strategy}`)
    }
    if (r.group !== 'direct') r.vs.direct = vs(r, 'direct')
    if (r.group !== 'nginx') {
      const n = nginxFor(r, byName)
      if (n !== undefined) r.vs.nginx = ratios(r, n, n.name, paired)
    }
  }
  const checks = []
  const within = (v, min) => v?.rpsRounds !== undefined && v.rpsRounds[0] < min && v.rpsRounds[1] >= min
  const check = (r, key, text, min, informational = false) => {
    const v = r.vs?.[key]
    const [yes, no] = informational ? ['met', 'not met'] : ['PASS', 'FAIL']
    const verdict = r.rps === undefined ? 'n/a (not measured)' : v?.rps === undefined ? 'n/a (baseline not run)' : v.rps >= min ? yes : no
    checks.push({ target: r.name, check: text, measured: v?.rps, rounds: v?.rpsRounds, straddles: within(v, min), min, verdict, flagged: r.flagged, ...(informational ? { informational } : {}) })
  }
  for (const r of rows) {
    if (r.group === 'fastify') check(r, 'baseline', 'req/s ≥ 1.0× bare @fastify/http-proxy', 1.0)
    if (r.group === 'express') {
      check(r, 'baseline', 'req/s ≥ 3× Express + http-proxy-middleware', 3)
      check(r, 'defaults', 'req/s ≥ 3× Express + http-proxy-middleware (defaults, no agent)', 3, true)
      check(r, 'fastify', `req/s ≥ 0.9× Affinity Fastify (${r.strategy})`, 0.9)
    }
  }
  return checks
}
