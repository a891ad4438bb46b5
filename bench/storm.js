// The failover storm (the BUILT packages: run `tsc -b` first, or `npm run bench:storm`).
// Three upstreams (child processes, bench/storm/upstream.js) that each serve --capacity
// requests at once and slow down sharply beyond; --users sticky users (stickyCookie,
// sessionBalanceFactor 1.25) with exponential think times, enough for --load of the
// fleet's capacity before the failure; a Fastify balancer (child process,
// bench/storm/balancer.js). After --warmup s and --before s of steady load one upstream
// is killed (SIGKILL); the run goes on for --after s. Two configurations, interleaved
// (limits, none, limits, none… over --rounds):
//   limits  maxInFlight = capacity, queue { max: --queue-max, timeoutMs: --queue-ms },
//           retryBudget { percent 20, min 3 }
//   none    no limit, no queue, no budget
// Reported per configuration: latency of the survivors' own users before and after the
// kill (p50, p99, the ratio of the p99s: required ≤ 2 with limits), the most requests a
// survivor served at once as the survivor counts them (required ≤ capacity with limits),
// where the victim's users went (against the session cap), 5xx by kind (required: only
// requests sent to the victim before the balancer knew it was down, and clean 503s from
// queues), throughput and the balancer's CPU per request.
// Usage: node bench/storm.js [--users 3000] [--capacity 50] [--work-ms 100] [--load 0.5]
//          [--warmup 10] [--before 20] [--after 30] [--queue-max 50] [--queue-ms 1000]
//          [--rounds 1] [--only limits,none] [--json]
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { list, parseArgs } from './args.js'
import { machine, machineLines } from './machine.js'
import { median, round } from './numbers.js'
import { runUsers } from './storm/users.js'
import { analyse } from './storm/analyse.js'

const HERE = fileURLToPath(new URL('./storm/', import.meta.url))
const SECRET = 'storm-bench-secret-0123456789abcdefghijklmnop'
const FACTOR = 1.25

const opts = parseArgs(process.argv.slice(2), {
  script: 'bench/storm.js',
  defaults: { users: 3000, capacity: 50, workMs: 100, load: 0.5, warmup: 10, before: 20, after: 30, queueMax: 50, queueMs: 1000, rounds: 1, only: ['limits', 'none'], json: false },
  flags: { '--json': o => { o.json = true } },
  values: {
    '--users': (o, v) => { o.users = Number(v) },
    '--capacity': (o, v) => { o.capacity = Number(v) },
    '--work-ms': (o, v) => { o.workMs = Number(v) },
    '--load': (o, v) => { o.load = Number(v) },
    '--warmup': (o, v) => { o.warmup = Number(v) },
    '--before': (o, v) => { o.before = Number(v) },
    '--after': (o, v) => { o.after = Number(v) },
    '--queue-max': (o, v) => { o.queueMax = Number(v) },
    '--queue-ms': (o, v) => { o.queueMs = Number(v) },
    '--rounds': (o, v) => { o.rounds = Number(v) },
    '--only': (o, v) => { o.only = list(v) },
  },
  help: 'node bench/storm.js [--users 3000] [--capacity 50] [--work-ms 100] [--load 0.5] [--warmup 10] [--before 20] [--after 30] [--queue-max 50] [--queue-ms 1000] [--rounds 1] [--only limits,none] [--json]',
})

const CONFIGS = {
  limits: { maxInFlight: opts.capacity, queue: { max: opts.queueMax, timeoutMs: opts.queueMs }, retryBudget: { percent: 20, min: 3 } },
  none: {},
}

function child (script, args = []) {
  const c = fork(`${HERE}${script}`, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const ask = (message, key) => new Promise(resolve => {
    const on = (m) => { if (m[key] !== undefined) { c.off('message', on); resolve(m) } }
    c.on('message', on)
    if (message !== undefined) c.send(message)
  })
  return { c, ask }
}

/** One storm: fresh upstreams and balancer, the users, the kill, the figures. */
async function storm (name) {
  const ups = ['A', 'B', 'C'].map((id, i) => ({ id, ...child('upstream.js', ['--name', id, '--capacity', String(opts.capacity), '--work', String(opts.workMs), '--seed', String(0x5eed + i)]) }))
  for (const u of ups) u.port = (await u.ask(undefined, 'port')).port
  const lb = child('balancer.js')
  const downs = []
  lb.c.on('message', (m) => { if (m.down !== undefined) downs.push(m) })
  const { port } = await lb.ask({ start: { upstreams: ups.map(u => ({ url: `http://127.0.0.1:${u.port}`, id: u.id })), secret: SECRET, factor: FACTOR, limits: CONFIGS[name] } }, 'port')
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: opts.users, pipelining: 1, headersTimeout: 60_000, bodyTimeout: 60_000 })
  // Closed-loop users: think, request, repeat. Mean think time so that the fleet is
  // `load` busy: users / (think + work) requests/s × work = load × 3 × capacity.
  const thinkMs = opts.users * opts.workMs / (opts.load * 3 * opts.capacity) - opts.workMs
  const victim = ups[0]
  const marks = { start: performance.now(), epochOffset: Date.now() - performance.now() }
  const cpu = {}
  const run = runUsers({ pool, users: opts.users, thinkMs, seed: 0x5707 })
  await sleep(opts.warmup * 1000)
  marks.before = performance.now()
  cpu.before = (await lb.ask('stats', 'cpu')).cpu
  await sleep(opts.before * 1000)
  cpu.kill = (await lb.ask('stats', 'cpu')).cpu
  marks.kill = performance.now()
  victim.c.kill('SIGKILL')
  await sleep(opts.after * 1000)
  marks.end = performance.now()
  cpu.end = (await lb.ask('stats', 'cpu')).cpu
  const records = await run.stop()
  const { stats } = await lb.ask('stats', 'stats')
  const upstreamStats = []
  for (const u of ups.slice(1)) upstreamStats.push((await u.ask('stats', 'stats')).stats)
  await pool.close()
  for (const u of ups.slice(1)) u.c.kill()
  lb.c.kill()
  await Promise.all([lb.c, ...ups.map(u => u.c)].map(c => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)))
  const downAt = downs.find(d => d.down === victim.id)?.at
  return analyse({ name, records, marks, cpu, stats, upstreamStats, victim: victim.id, downAt: downAt === undefined ? Infinity : downAt - marks.epochOffset, capacity: opts.capacity, users: opts.users, factor: FACTOR })
}

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

async function main () {
  const m = machine()
  const command = `node bench/storm.js ${process.argv.slice(2).join(' ')}`.trim()
  const results = Object.fromEntries(opts.only.map(n => [n, []]))
  for (let r = 0; r < opts.rounds; r++) {
    for (const name of opts.only) {
      process.stderr.write(`  … round ${r + 1}: ${name}\n`)
      results[name].push(await storm(name))
    }
  }
  if (opts.json) { process.stdout.write(JSON.stringify({ machine: m, command, opts, results }, null, 2) + '\n'); return }
  const lines = ['Failover storm: one of three upstreams killed under load', '', ...machineLines(m, command, 9), '',
    `${opts.users} sticky users (stickyCookie, sessionBalanceFactor ${FACTOR}), upstreams of capacity ${opts.capacity} (work ${opts.workMs / 2}–${opts.workMs * 1.5} ms, thrashing beyond),`,
    `load ${opts.load} of the fleet before the kill; ${opts.warmup} s warm-up, ${opts.before} s before, ${opts.after} s after. limits: maxInFlight ${opts.capacity}, queue { max ${opts.queueMax}, timeoutMs ${opts.queueMs} }, retryBudget { 20 %, 3 }.`,
    `Medians over ${opts.rounds} round(s), configurations interleaved.`, '']
  const rows = [
    ['survivors\' users p50 before / after (ms)', r => `${r.own.before.p50} / ${r.own.after.p50}`],
    ['survivors\' users p99 before / after (ms)', r => `${r.own.before.p99} / ${r.own.after.p99}`],
    ['p99 after ÷ before (required ≤ 2 with limits)', r => r.own.ratio],
    ['victim\'s users p99 after (ms)', r => r.victimUsers.p99],
    ['most in flight at a survivor, before / after (its own count)', r => `${r.survivorMax.before} / ${r.survivorMax.after}`],
    ['victim\'s users re-pinned (served by a survivor)', r => `${r.repinned.count} of ${r.repinned.of}`],
    ['users per survivor at the end / session cap', r => `${r.repinned.perSurvivor.join(', ')} / ${r.repinned.cap}`],
    ['5xx sent to the victim before it was marked down', r => r.errors.victim],
    ['clean 503s (queue full / queue timeout)', r => `${r.errors.queueFull} / ${r.errors.queueTimeout}`],
    ['other 5xx (required 0 with limits)', r => r.errors.other],
    ['  of which', r => Object.entries(r.errors.otherKinds).map(([k, n]) => `${n}× ${k.split(' ')[0]}`).join(', ') || '—'],
    ['client errors (no answer)', r => r.errors.client],
    ['retries made / refused by the budget', r => `${r.retries.made} / ${r.retries.refused}`],
    ['requests/s answered 200, before / after', r => `${r.rps.before} / ${r.rps.after}`],
    ['balancer CPU µs per request, before / after', r => `${r.cpuPerRequest.before} / ${r.cpuPerRequest.after}`],
  ]
  const pick = (name, f) => { const xs = results[name].map(f); return xs.length === 1 ? xs[0] : xs.join(' · ') }
  const width = Math.max(...rows.map(r => r[0].length))
  lines.push(`${''.padEnd(width)}  ${opts.only.map(n => n.padEnd(24)).join('  ')}`)
  for (const [label, f] of rows) lines.push(`${label.padEnd(width)}  ${opts.only.map(n => String(pick(n, f)).padEnd(24)).join('  ')}`)
  if (opts.rounds > 1) lines.push('', `(several rounds: one figure per round, in order; median p99 ratio: ${opts.only.map(n => `${n} ${round(median(results[n].map(r => r.own.ratio)), 2)}`).join(', ')})`)
  process.stdout.write(lines.join('\n') + '\n')
}

await main()
