// Comparisons between targets: ratios of their figures, and the checks against the targets
// Affinity sets itself (issue 18; figures are printed, never asserted: a missed target is reported).
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
  const xs = a.rounds.map((r, k) => (b.rounds[k][key] ? r[key] / b.rounds[k][key] : undefined)).filter(Number.isFinite)
  return xs.length === 0 ? undefined : [round(Math.min(...xs), 2), round(Math.max(...xs), 2)]
}

function ratios (a, b, ref, paired) {
  if (a === undefined || b === undefined || b.rps === undefined || a.rps === undefined) return undefined
  const r = (key) => ratio(a, b, key, paired)
  return { ref, rps: r('rps'), rpsRounds: spread(a, b, 'rps', paired), p50: r('p50'), p99: r('p99'), cpuPerReq: r('cpuUsPerReq'), cpuRounds: spread(a, b, 'cpuUsPerReq', paired) }
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
 * CPU per request of `a` ÷ the sum of the refs' CPU per request (Express ÷ Express hello
 * world + floor): per round when paired, with the median and the lowest and highest.
 */
function sumRatio (a, refs, paired) {
  if (a?.cpuUsPerReq === undefined || refs.some(r => r?.cpuUsPerReq === undefined)) return undefined
  const n = a.rounds.length
  if (paired && refs.every(r => r.rounds.length === n)) {
    const xs = a.rounds.map((r, k) => r.cpuUsPerReq / refs.reduce((sum, ref) => sum + ref.rounds[k].cpuUsPerReq, 0))
    if (xs.every(Number.isFinite)) return { value: round(median(xs), 3), rounds: [round(Math.min(...xs), 2), round(Math.max(...xs), 2)], perRound: xs.map(x => round(x, 3)) }
  }
  return { value: round(a.cpuUsPerReq / refs.reduce((sum, ref) => sum + ref.cpuUsPerReq, 0), 3) }
}

/**
 * µs of CPU per request an Express door spends above Express plus forwarding, per round:
 * door − (express-hello − node-hello) − floor, i.e. with the server side (accept, parse,
 * respond) that both hello worlds and the floor pay counted once. Median and per round.
 */
function excessUs (a, hello, floor, nodeHello) {
  const refs = [hello, floor, nodeHello]
  if (a?.rounds === undefined || refs.some(r => r?.rounds?.length !== a.rounds.length)) return undefined
  const xs = a.rounds.map((r, k) => r.cpuUsPerReq - hello.rounds[k].cpuUsPerReq - floor.rounds[k].cpuUsPerReq + nodeHello.rounds[k].cpuUsPerReq)
  return xs.every(Number.isFinite) ? { value: round(median(xs), 1), perRound: xs.map(x => round(x, 1)) } : undefined
}

/** Per-round ratios of one figure (paired rounds), for the per-round table. */
function perRound (a, b, key) {
  if (a?.rounds === undefined || b?.rounds === undefined || a.rounds.length !== b.rounds.length) return undefined
  return a.rounds.map((r, k) => (r[key] === undefined || !b.rounds[k][key] ? undefined : round(r[key] / b.rounds[k][key], 3)))
}

/**
 * Sets each measured row's `vs` (its ratios to the other targets) and returns the target
 * checks: issue 18's, against the floor (node:http + undici Pool), bare @fastify/http-proxy,
 * Express + http-proxy-middleware with a keep-alive agent, and Express hello world + floor.
 */
export function compare (rows, paired) {
  const byName = new Map(rows.map(r => [r.name, r]))
  const vs = (r, name) => ratios(r, byName.get(name), name, paired)
  const floor = byName.get('floor')
  for (const r of rows) {
    if (r.rps === undefined) continue
    r.vs = {}
    if (r.group === 'fastify') r.vs.baseline = vs(r, 'fastify-proxy')
    if (r.group === 'express') {
      // Doors on createServer(app) against the hello world on the same kind of server, and their app.listen() twin.
      const hello = byName.get(r.createServer ? 'express-hello+createServer' : 'express-hello')
      if (r.createServer) r.vs.listen = vs(r, r.name.replace(/\+createServer$/, ''))
      r.vs.baseline = vs(r, 'express-hpm')
      r.vs.defaults = vs(r, 'express-hpm-noagent')
      r.vs.fastify = vs(r, `fastify-${r.strategy}`)
      r.vs.helloFloor = sumRatio(r, [hello, floor], paired)
      if (paired) r.vs.excessUs = excessUs(r, hello, floor, byName.get('node-hello'))
    }
    if (r.group !== 'direct' && r.name !== 'floor' && floor?.rps !== undefined) {
      r.vs.floor = vs(r, 'floor')
      if (paired) r.floorRounds = { rps: perRound(r, floor, 'rps'), cpuPerReq: perRound(r, floor, 'cpuUsPerReq') }
    }
    if (r.group !== 'direct') r.vs.direct = vs(r, 'direct')
    if (!r.base && byName.has(`${r.name}@base`)) r.vs.base = vs(r, `${r.name}@base`)
    if (r.group !== 'nginx') {
      const n = nginxFor(r, byName)
      if (n !== undefined) r.vs.nginx = ratios(r, n, n.name, paired)
    }
  }
  const checks = []
  // `measured`: the median of per-round ratios; `range`: their lowest and highest; `atMost`:
  // the target is an upper bound (CPU per request), else a lower bound (req/s).
  const check = (r, text, measured, range, limit, atMost) => {
    const ok = (v) => (atMost ? v <= limit : v >= limit)
    const verdict = r.rps === undefined ? 'n/a (not measured)' : measured === undefined ? 'n/a (reference not run)' : ok(measured) ? 'PASS' : 'FAIL'
    const straddles = range !== undefined && ok(range[0]) !== ok(range[1])
    checks.push({ target: r.name, check: text, measured, rounds: range, straddles, limit, atMost, verdict, flagged: r.flagged })
  }
  for (const r of rows) {
    if (r.base) continue // the twins are there for the ÷ @base column
    const v = r.vs ?? {}
    if (r.group === 'core') check(r, 'CPU/req ≤ 1.05× the floor', v.floor?.cpuPerReq, v.floor?.cpuRounds, 1.05, true)
    if (r.group === 'fastify') {
      check(r, 'CPU/req ≤ 1.10× the floor', v.floor?.cpuPerReq, v.floor?.cpuRounds, 1.10, true)
      check(r, 'req/s ≥ 1.6× bare @fastify/http-proxy', v.baseline?.rps, v.baseline?.rpsRounds, 1.6, false)
    }
    if (r.group === 'express') {
      check(r, `CPU/req ≤ 1.1× (Express hello world${r.createServer ? ' on createServer' : ''} + floor)`, v.helloFloor?.value, v.helloFloor?.rounds, 1.1, true)
      check(r, 'req/s ≥ 1.4× Express + http-proxy-middleware (keep-alive)', v.baseline?.rps, v.baseline?.rpsRounds, 1.4, false)
    }
  }
  return checks
}
