// The measurement: each target set up (started, checked, warmed up), then measured in
// autocannon rounds, interleaved or one target at a time; per-target medians at the end.
import { checkAndPrime } from './check.js'
import { allowedCpus, coreSnapshot, coresBetween, cpuBetween, cpuSnapshot, OTHERS_LIMIT } from './cpu.js'
import { median, percentile, round } from '../numbers.js'
import { isInterrupted, startNginx, startNodeProxy } from './processes.js'
import { STRATEGIES, TARGETS } from './targets.js'
import { HOST, PATH, UPSTREAM_NAMES } from './upstreams.js'
import { userHeaders } from './users.js'

const progress = (msg) => process.stderr.write(`  … ${msg}\n`)

let autocannon
/**
 * One autocannon run of `discard + seconds`: the first `discard` seconds (re-)warm the
 * connections and are not counted; `onWindow()` is called when the counted window starts.
 * Every user keeps to one connection (user i on connection i mod C), as a browser keeps
 * its keep-alive connection, and each connection cycles through its users: all users are
 * in play at once and the build of the requests stays small (autocannon deep-copies and
 * builds every request of its `requests` list for each connection).
 */
export async function load (port, requests, opts, seconds, discard = 0, onWindow = undefined) {
  autocannon ??= (await import('autocannon')).default
  const C = opts.connections
  const slices = Array.from({ length: C }, (_, c) => {
    const own = requests.filter((_, i) => i % C === c)
    return own.length > 0 ? own : [requests[c % requests.length]]
  })
  let clientIndex = 0
  let times = new Float64Array(1 << 16)
  let n = 0
  let ok = 0
  let counting = false
  let tStart
  const inst = autocannon({
    url: `http://${HOST}:${port}`,
    connections: C,
    pipelining: 1,
    duration: discard + seconds,
    sampleInt: 100, // stop promptly at the end of the duration (autocannon stops on a sample tick)
    timeout: 10,
    requests: [requests[0]],
    setupClient: (client) => client.setRequests(slices[clientIndex++ % C]),
  })
  const open = () => { tStart = performance.now(); counting = true; onWindow?.() }
  if (discard > 0) setTimeout(open, discard * 1000)
  else open()
  inst.on('response', (_client, status, _bytes, ms) => {
    if (!counting) return
    if (n === times.length) { const bigger = new Float64Array(times.length * 2); bigger.set(times); times = bigger }
    times[n++] = ms
    if (status >= 200 && status < 300) ok++
  })
  const r = await inst
  const secs = (performance.now() - tStart) / 1000
  return {
    seconds: round(secs, 3),
    responses: n,
    rps: n / secs,
    p50: percentile(times, n, 50),
    p99: percentile(times, n, 99),
    ok,
    // over the whole run, discarded warm-up included: every failure counts
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    resets: r.resets,
  }
}

/** Starts a target's proxy, checks it, gives every user a first visit, warms it up. */
async function setup (state, opts, ctx) {
  const { target, row } = state
  try {
    if (target.group === 'direct') state.proxy = { port: Number(new URL(ctx.origins[0]).port), stop: async () => {} }
    else if (target.nginx !== undefined) state.proxy = await startNginx(ctx.nginx, target, ctx.origins, ctx.upstreams.proc)
    else state.proxy = await startNodeProxy(target, ctx.origins, opts)
    if (state.proxy.workers !== undefined) row.nginxWorkers = state.proxy.workers
    if (state.proxy.pid !== undefined) row.allowedCpus = allowedCpus(state.proxy.pid)
    const check = await checkAndPrime(target, state.proxy.port, ctx.users)
    row.check = check
    if (!check.ok) {
      row.skipped = `correctness check failed: ${check.problems.join('; ')}`
      await state.proxy.stop()
      return false
    }
    // The request list, built once: each user's headers (with the cookie it got, if any).
    state.requests = ctx.users.map(u => ({ method: 'GET', path: PATH, headers: userHeaders(u) }))
    if (opts.warmup > 0) await load(state.proxy.port, state.requests, opts, opts.warmup)
    row.rounds = []
    row.counts = UPSTREAM_NAMES.map(() => 0)
    return true
  } catch (err) {
    row.skipped = `failed: ${err.message}`
    await state.proxy?.stop?.().catch(() => {})
    return false
  }
}

/** One measured round of a target: `--rewarm` s not counted, then `--duration` s counted. */
async function measureRound (state, i, opts, ctx) {
  const { target, row, proxy } = state
  const pids = target.group === 'direct' ? [] : [proxy.pid, ...(proxy.workerPids?.() ?? [])]
  const roles = { door: pids, upstreams: [ctx.upstreams.proc.pid], loadgen: [process.pid] }
  let before
  let cores0
  let w0
  let reset
  const r = await load(proxy.port, state.requests, opts, opts.duration, opts.rewarm, () => {
    reset = ctx.upstreams.stats(true)
    cores0 = coreSnapshot(roles)
    before = cpuSnapshot(pids, ctx.upstreams.proc.pid)
    w0 = Number(process.hrtime.bigint() / 1000n) // µs, the clock V8's profiler stamps samples with
  })
  const w1 = Number(process.hrtime.bigint() / 1000n)
  const cpu = cpuBetween(before, cpuSnapshot(pids, ctx.upstreams.proc.pid))
  const cores = coresBetween(cores0, coreSnapshot(roles))
  await reset
  const counts = await ctx.upstreams.stats(true)
  ;(row.windows ??= []).push([w0, w1])
  if (cpu !== undefined && target.group === 'direct') cpu.proxy = undefined
  for (let k = 0; k < counts.length; k++) row.counts[k] += counts[k]
  const cpuUsPerReq = cpu?.proxy === undefined || r.rps === 0 ? undefined : round((cpu.proxy / r.rps) * 1e6, 1)
  row.rounds.push({ seconds: r.seconds, responses: r.responses, rps: round(r.rps, 0), p50: round(r.p50, 3), p99: round(r.p99, 3), non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts, resets: r.resets, cpu, cpuUsPerReq, cores })
  const cpuText = cpu === undefined ? '' : `; CPU (cores): proxy ${cpu.proxy ?? '—'}${cpuUsPerReq === undefined ? '' : ` (${cpuUsPerReq} µs/req)`}, upstreams ${cpu.upstreams}, load generator ${cpu.loadgen}, other processes ${cpu.others}, machine ${cpu.machine}${cpu.steal > 0.01 ? `, steal ${cpu.steal}` : ''}; ran on CPU ${coresText(cores)}`
  progress(`${target.name} round ${i + 1}/${opts.rounds}: ${Math.round(r.rps)} req/s, p50 ${r.p50?.toFixed(2)} ms, p99 ${r.p99?.toFixed(2)} ms${r.non2xx + r.errors > 0 ? `, ${r.non2xx} non-2xx, ${r.errors} errors` : ''}${cpuText}`)
}

/** "door 1, upstreams 0, load generator 0": the CPUs each role's busy threads ran on. */
export function coresText (cores) {
  if (cores === undefined) return '—'
  const names = { door: 'door', upstreams: 'upstreams', loadgen: 'load generator' }
  return Object.entries(cores).filter(([, c]) => c.length > 0).map(([role, c]) => `${names[role]} ${c.join('+')}`).join(', ')
}

/** Medians over rounds, totals, flags. */
function finish (state) {
  const { row } = state
  if (row.skipped || row.rounds === undefined || row.rounds.length === 0) return
  const total = row.counts.reduce((a, b) => a + b, 0)
  row.upstreamSplit = row.counts.map(c => (total === 0 ? 0 : round(c / total, 3)))
  delete row.counts
  const med = (f) => { const xs = row.rounds.map(f).filter(x => x !== undefined); return xs.length ? median(xs) : undefined }
  row.rps = round(med(r => r.rps), 0)
  row.rpsMin = Math.min(...row.rounds.map(r => r.rps))
  row.rpsMax = Math.max(...row.rounds.map(r => r.rps))
  row.p50 = round(med(r => r.p50), 3)
  row.p99 = round(med(r => r.p99), 3)
  row.cpuUsPerReq = round(med(r => r.cpuUsPerReq), 1)
  row.non2xx = row.rounds.reduce((a, r) => a + r.non2xx, 0)
  row.errors = row.rounds.reduce((a, r) => a + r.errors, 0)
  row.timeouts = row.rounds.reduce((a, r) => a + r.timeouts, 0)
  const cpuMed = (k) => { const v = med(r => r.cpu?.[k]); return v === undefined ? undefined : round(v, 2) }
  row.cpu = { proxy: cpuMed('proxy'), upstreams: cpuMed('upstreams'), loadgen: cpuMed('loadgen'), others: cpuMed('others'), machine: cpuMed('machine'), steal: cpuMed('steal') }
  const busyRounds = row.rounds.filter(r => r.cpu?.others > OTHERS_LIMIT).length
  if (busyRounds > 0) row.busy = `other processes used > ${OTHERS_LIMIT} core in ${busyRounds} of ${row.rounds.length} rounds (max ${Math.max(...row.rounds.map(r => r.cpu?.others ?? 0))})`
  // Every CPU each role ran on in any round (pinned: one each).
  row.cores = {}
  for (const role of ['door', 'upstreams', 'loadgen']) {
    row.cores[role] = [...new Set(row.rounds.flatMap(r => r.cores?.[role] ?? []))].sort((a, b) => a - b)
  }
  row.flagged = row.non2xx > 0 || row.errors > 0 || row.check.problems.length > 0 || row.busy !== undefined
}

/**
 * Interleaved (default): every target is started, checked and warmed up first and
 * stays up (idle) while the others are measured; then round k measures each target
 * in turn, in reverse order on odd rounds. A slow spell of the machine then costs
 * every target alike instead of whichever target happened to run in it.
 * Sequential (--sequential): one target at a time, its proxy stopped before the next.
 */
export async function runAll (states, opts, ctx) {
  if (opts.sequential) {
    for (const st of states) {
      if (isInterrupted()) break
      progress(`${st.target.name}: ${st.target.label}`)
      if (!(await setup(st, opts, ctx))) { progress(`${st.target.name}: ${st.row.skipped}`); continue }
      for (let i = 0; i < opts.rounds && !isInterrupted(); i++) await measureRound(st, i, opts, ctx)
      await st.proxy.stop()
      finish(st)
    }
    return
  }
  const live = []
  for (const st of states) {
    if (isInterrupted()) break
    progress(`${st.target.name}: ${st.target.label}: start, check, first visits, warm-up`)
    if (await setup(st, opts, ctx)) live.push(st)
    else progress(`${st.target.name}: ${st.row.skipped}`)
  }
  // Round order: the baselines, then each strategy's core, Fastify and Express targets side
  // by side, so the figures a ratio compares are measured close together in time.
  const rank = (st) => {
    const t = st.target
    if (t.strategy === undefined) return TARGETS.indexOf(t) - 100
    return STRATEGIES.indexOf(t.strategy) * 3 + (t.group === 'core' ? 0 : t.group === 'fastify' ? 1 : 2)
  }
  const ordered = [...live].sort((a, b) => rank(a) - rank(b))
  for (let i = 0; i < opts.rounds && !isInterrupted(); i++) {
    const order = i % 2 === 0 ? ordered : [...ordered].reverse()
    for (const st of order) {
      if (isInterrupted()) break
      await measureRound(st, i, opts, ctx)
    }
  }
  for (const st of live) { await st.proxy.stop(); finish(st) }
}
