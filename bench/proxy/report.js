// What the benchmark prints: the run's description, then the Results, Ratios and Targets tables.
import { machineLines } from '../machine.js'
import { PATH } from './upstreams.js'

function table (cols, rows) {
  const cells = rows.map(r => (r === null ? null : cols.map(c => { const v = c.get(r); return v === undefined || v === null ? '—' : String(v) })))
  const widths = cols.map((c, i) => Math.max(c.label.length, ...cells.filter(Boolean).map(r => r[i].length)))
  const line = (vals) => vals.map((v, i) => (cols[i].left ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd()
  const out = [line(cols.map(c => c.label)), widths.map(w => '─'.repeat(w)).join('  ')]
  for (const r of cells) out.push(r === null ? '' : line(r))
  return out.join('\n')
}
const x2 = (v) => (v === undefined ? undefined : `${v.toFixed(2)}×`)
const ms = (v) => (v === undefined ? undefined : v.toFixed(2))
const int = (v) => (v === undefined ? undefined : Math.round(v).toLocaleString('en-US'))
const tri = (v) => (v === undefined ? undefined : `${x2(v.rps)} ${x2(v.p50)} ${x2(v.p99)} ${x2(v.cpuPerReq) ?? '—'}`)
/** A blank line between the families of targets (direct, fastify, express, nginx). */
const withGaps = (rows) => {
  const out = []
  for (let i = 0; i < rows.length; i++) {
    if (i > 0 && rows[i].group.split('-')[0] !== rows[i - 1].group.split('-')[0]) out.push(null)
    out.push(rows[i])
  }
  return out
}

/** The run's description, printed before anything is measured: machine, versions, method, targets. */
export function printIntro ({ opts, machine, versions, command, loadStart, busyBefore, targets, notes }) {
  const perTarget = opts.warmup + opts.rounds * (opts.duration + opts.rewarm)
  const lines = [
    'Affinity proxy benchmark: the Node floor, Affinity (core on node:http, Fastify plugin, Express middleware), @fastify/http-proxy,',
    'http-proxy-middleware and nginx',
    ...machineLines(machine, command, 11),
    `load avg:  ${loadStart.join(' ')} (1/5/15 min, at start; figures assume an otherwise idle machine)`,
  ]
  if (busyBefore !== undefined) lines.push(`idle?:     ${busyBefore} cores busy over the second before start${busyBefore > 0.2 ? '  ← WARNING: the machine is not idle, figures will be low and noisy' : ''}`)
  lines.push(
    `load:      autocannon ${versions.autocannon} (programmatic, in the parent process), ${opts.connections} connections, no pipelining, GET ${PATH}`,
    `users:     ${opts.users.toLocaleString('en-US')} returning users (own x-user, X-Forwarded-For, sid cookie; stickyCookie: + the balancer cookie each`,
    `           got on a first visit through the same proxy); user i on connection i mod ${opts.connections}, each connection cycling its users`,
    `timing:    per target: correctness check + one first visit per user, warm-up ${opts.warmup} s, then ${opts.rounds} rounds × ${opts.duration} s`,
    opts.sequential
      ? `           (sequential: one target at a time; ${opts.rewarm} s unmeasured before each round)`
      : `           interleaved: round k runs every target in turn (baselines, then Fastify/Express per strategy; reversed on odd rounds),`,
    opts.sequential ? undefined : `           one autocannon run each: ${opts.rewarm} s not counted, then ${opts.duration} s; ratios = medians of per-round ratios;`,
    `           figures are medians over rounds; p50/p99 from every response's own time (not autocannon's whole-ms histogram)`,
    `processes: 3 upstreams (node:http, keep-alive, small JSON) in one child; each proxy in a child of its own (${opts.sequential ? 'one at a time' : 'all up, idle when not measured'});`,
    `           nginx: master + worker_processes 1; the load generator here. ${machine.cores} cores; ${opts.pinned ? `pinned with taskset: each door alone on CPU ${machine.cores - 1}, upstreams + load generator on CPU ${machine.cores > 2 ? `0-${machine.cores - 2}` : '0'}` : 'nothing pinned'}`,
    `           (the CPUs each process's busy threads ran on, from /proc/<pid>/task/*/stat, are printed per round and per target)`,
    `floor:     node:http + undici Pool per upstream (dispatch API), round robin, client headers copied (rawHeaders), bodies piped; nothing else`,
    `core-<s>:  createBalancer + balancer.choose + balancer.forward in http.createServer (README "Using the core directly"), cookie package`,
    `hello:     express-hello: Express 5, one middleware answering the upstream's body itself; node-hello: the same from plain node:http`,
    `proxies:   Fastify ${versions.fastify} (logger off, trustProxy true); Express ${versions.express} (trust proxy true);`,
    `           @fastify/http-proxy ${versions['@fastify/http-proxy']} (upstream '', replyOptions.getUpstream round robin); http-proxy-middleware`,
    `           ${versions['http-proxy-middleware']} (router round robin, changeOrigin, xfwd; express-hpm: keep-alive http.Agent, express-hpm-noagent:`,
    `           its default, no agent); Affinity: upstreams + strategy shorthand (passive health on, no active checks), undici ${versions.undici}`,
    `nginx:     ${machine.nginx ?? 'not installed'}; worker_processes 1, keepalive 32, proxy_http_version 1.1, Connection "", realip from 127.0.0.1, access_log off`,
    `targets:   ${targets.map(t => t.name).join(', ')}`,
    `           ≈ ${Math.ceil((targets.length * (perTarget + 1.5)) / 60)} min (${targets.length} targets × ${perTarget} s of load + set-up)`,
  )
  for (const n of notes) lines.push(`note:      ${n}`)
  if (opts.cpuProf) lines.push(`profiling: every Node proxy child runs under --cpu-prof; profiles in ${opts.cpuProfDir}`)
  lines.push('')
  return lines.filter(l => l !== undefined).join('\n')
}

function resultsTable (rows) {
  return table([
    { label: 'target', left: true, get: r => r.name + (r.flagged ? ' (!)' : '') },
    { label: 'req/s', get: r => int(r.rps) },
    { label: 'rounds min–max', get: r => (r.rps === undefined ? undefined : `${int(r.rpsMin)}–${int(r.rpsMax)}`) },
    { label: 'p50 ms', get: r => ms(r.p50) },
    { label: 'p99 ms', get: r => ms(r.p99) },
    { label: 'non-2xx', get: r => r.non2xx },
    { label: 'errors', get: r => (r.rps === undefined ? undefined : r.errors) },
    { label: 'µs CPU/req', get: r => r.cpuUsPerReq?.toFixed(0) },
    { label: '÷ floor', get: r => x2(r.vs?.floor?.cpuPerReq) },
    { label: 'CPU# door/ups/gen', left: true, get: r => (r.cores === undefined ? undefined : ['door', 'upstreams', 'loadgen'].map(k => r.cores[k].join('+') || '—').join('/')) },
    { label: 'CPU proxy/ups/gen/other', left: true, get: r => (r.cpu === undefined ? undefined : `${r.cpu.proxy ?? '—'}/${r.cpu.upstreams ?? '—'}/${r.cpu.loadgen ?? '—'}/${r.cpu.others ?? '—'}`) },
    { label: 'split', left: true, get: r => r.upstreamSplit?.map(x => Math.round(x * 100)).join('/') },
    { label: 'check', left: true, get: r => (r.skipped ?? (r.check?.problems?.length ? r.check.problems.join('; ') : `ok${r.check?.returningChecked ? `, ${r.check.returningChecked} returning users stayed` : ''}`)) },
  ], withGaps(rows))
}

function ratiosTable (rows) {
  const vs = (v) => (v ? `${tri(v)} (${v.ref})` : undefined)
  return table([
    { label: 'target', left: true, get: r => r.name },
    { label: '÷ its baseline', left: true, get: r => vs(r.vs?.baseline) },
    { label: '÷ floor', left: true, get: r => (r.vs?.floor ? tri(r.vs.floor) : undefined) },
    { label: '÷ Affinity Fastify', left: true, get: r => vs(r.vs?.fastify) },
    { label: '÷ on app.listen()', left: true, get: r => (r.vs?.listen ? tri(r.vs.listen) : undefined) },
    { label: '÷ @base', left: true, get: r => (r.vs?.base ? tri(r.vs.base) : undefined) },
    { label: '÷ nginx', left: true, get: r => vs(r.vs?.nginx) },
    { label: '÷ direct', left: true, get: r => (r.vs?.direct ? tri(r.vs.direct) : undefined) },
  ], withGaps(rows.filter(r => r.rps !== undefined)))
}

function targetsTable (checks) {
  return table([
    { label: 'target', left: true, get: c => c.target },
    { label: 'check', left: true, get: c => c.check },
    { label: 'measured', get: c => x2(c.measured) },
    { label: 'target', get: c => `${c.atMost ? '≤' : '≥'} ${x2(c.limit)}` },
    { label: 'per-round range', get: c => (c.rounds === undefined ? undefined : `${c.rounds[0].toFixed(2)}–${c.rounds[1].toFixed(2)}`) },
    { label: 'verdict', left: true, get: c => c.verdict + (c.straddles ? ' (rounds on both sides)' : '') + (c.flagged ? ' (target flagged: see check/errors)' : '') },
  ], checks)
}

/**
 * Door CPU per request ÷ the floor's, round by round (round k of both ran within a minute of
 * each other), then the median; Express doors also ÷ (Express hello world + floor).
 */
function perRoundTable (rows, opts) {
  const measured = rows.filter(r => r.floorRounds?.cpuPerReq !== undefined || r.vs?.helloFloor?.perRound !== undefined || r.vs?.excessUs !== undefined)
  if (opts.sequential || measured.length === 0) return []
  const n = Math.max(...measured.map(r => r.rounds.length))
  const f = (v) => (v === undefined ? '—' : Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(2))
  const out = []
  for (const r of measured) {
    if (r.floorRounds?.cpuPerReq !== undefined) out.push({ name: r.name, what: '÷ floor', xs: r.floorRounds.cpuPerReq, med: r.vs.floor.cpuPerReq })
    if (r.vs?.helloFloor?.perRound !== undefined) out.push({ name: r.name, what: '÷ (hello + floor)', xs: r.vs.helloFloor.perRound, med: r.vs.helloFloor.value })
    if (r.vs?.excessUs !== undefined) out.push({ name: r.name, what: 'µs over Express+fwd', xs: r.vs.excessUs.perRound, med: r.vs.excessUs.value })
  }
  return [
    'Door CPU per request ÷ the floor\'s, per round (and Express doors ÷ (express-hello + floor)); median = the median of these per-round ratios.',
    '"µs over Express+fwd": Express door − (express-hello − node-hello) − floor, in µs of CPU per request: what the door spends above',
    'Express\'s own cost plus the floor\'s forwarding, with the server side the hello worlds and the floor all pay counted once.',
    '',
    table([
      { label: 'target', left: true, get: x => x.name },
      { label: 'ratio', left: true, get: x => x.what },
      ...Array.from({ length: n }, (_, k) => ({ label: `r${k + 1}`, get: x => f(x.xs[k]) })),
      { label: 'median', get: x => f(x.med) },
    ], out),
  ]
}

export function printResults (rows, checks, opts) {
  const lines = []
  lines.push('Results (medians of rounds; µs CPU/req = proxy process CPU time per request (nginx: master + worker); CPU = cores used by')
  lines.push('the proxy / the upstreams process / the load generator / every other process; split = upstream requests s1/s2/s3 in the rounds)')
  lines.push('', resultsTable(rows), '')
  lines.push('Ratios: req/s p50 p99 CPU/req, each "this ÷ that" (req/s above 1 is faster; latency and CPU per request above 1 is slower);')
  lines.push(opts.sequential ? 'ratios of the medians' : 'each the median over rounds of the ratio within a round (round k of both targets ran within a minute of each other)')
  lines.push('', ratiosTable(rows), '')
  lines.push('nginx column: hash strategies (consistentHash ring/maglev) ÷ nginx-hash, IP strategies (ipHash, stickyIp) ÷ nginx-iphash,')
  lines.push('everything else (roundRobin, leastConnections, stickyCookie, baselines) ÷ the faster nginx by req/s (named in brackets).')
  lines.push('', ...perRoundTable(rows, opts))
  if (checks.length > 0) {
    lines.push('', 'Targets (issue 18)', '', targetsTable(checks))
    const fails = checks.filter(c => c.verdict === 'FAIL').length
    const passes = checks.filter(c => c.verdict === 'PASS').length
    lines.push('')
    lines.push(`${passes} PASS, ${fails} FAIL${checks.length - passes - fails > 0 ? `, ${checks.length - passes - fails} n/a` : ''}` +
      ' (verdicts on the median of per-round ratios; "rounds on both sides": the per-round ratios straddle the target, so the verdict is within this machine\'s noise)')
  }
  const flagged = rows.filter(r => r.flagged || r.skipped)
  if (flagged.length > 0) {
    lines.push('')
    lines.push(`(!) flagged: ${flagged.map(r => `${r.name}: ${r.skipped ?? [r.non2xx ? `${r.non2xx} non-2xx` : '', r.errors ? `${r.errors} errors` : '', ...(r.check?.problems ?? []), r.busy].filter(Boolean).join(', ')}`).join('; ')}`)
  }
  if (opts.cpuProf) lines.push('', 'NOTE: proxies ran under --cpu-prof: these figures are slower than unprofiled ones; do not compare them with a normal run.')
  return lines.join('\n') + '\n'
}
