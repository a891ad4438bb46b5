// Strategy benchmark for @affinity/core (the BUILT package: run `tsc -b` first, or
// `npm run bench:strategies`). Measures, on this machine:
//   1. quality   busiest upstream's share ÷ mean: exact key-space share and a 1M-key sample
//                (ring, maglev; nginx ketama measured alongside for comparison)
//   2. movement  keys that change upstream when one upstream is removed / added
//                (ring, maglev: the hash tables directly; ipHash: through a real Balancer)
//   3. pick      ns per balancer.choose(req) at N = 100, each case in its own process
//   4. build     ring / maglev construction time, one membership change, and memory
// Usage: node bench/strategies.js [--json] [--only quality,movement,pick,build]
//          [--case ring,maglev,...] [--keys 1000000] [--sets 10] [--no-isolate]
//   --json        print the results as JSON on stdout (progress goes to stderr)
//   --case        pick cases to run (see PICK_CASES), e.g. --only pick --case ring,ipHash-v4
//   --no-isolate  run the pick cases in this process instead of one child process each
// Profiling: node --cpu-prof --cpu-prof-dir=/tmp/prof bench/strategies.js --only pick --case ring
//   (children inherit execArgv, so each pick case writes its own .cpuprofile).
// Figures are printed, never asserted: a missed target is reported, the exit code stays 0.
// Each section lives in bench/strategies/<section>.js (shared.js: keys, tables, formatting);
// this file parses the arguments, runs the sections and prints the summary.
import os from 'node:os'
// White-box pieces, through the declared internal entry (not part of the public API).
import { DEFAULT_MAGLEV_SIZE, DEFAULT_VNODES } from '@affinity/core/internal'
import { round } from './numbers.js'
import { die as dieWith, list, parseArgs as parseWith } from './args.js'
import { machine as describeMachine, machineLines } from './machine.js'
import { KEY_SEED, nowNs, msSince, progress, table, f3, f1 } from './strategies/shared.js'
import { makeKeys, quality, printQuality } from './strategies/quality.js'
import { movement, printMovement } from './strategies/movement.js'
import { PICK_CASES, runPickCase, pick, printPick } from './strategies/pick.js'
import { build, printBuild } from './strategies/build.js'

const SECTIONS = ['quality', 'movement', 'pick', 'build']

// ───────────────────────────── arguments ─────────────────────────────

function parseArgs (argv) {
  const o = parseWith(argv, {
    script: 'bench/strategies.js',
    defaults: { json: false, only: SECTIONS, cases: undefined, keys: 1_000_000, sets: 10, isolate: true, worker: undefined },
    flags: { '--json': o => { o.json = true }, '--no-isolate': o => { o.isolate = false } },
    values: {
      '--only': (o, v) => { o.only = list(v) },
      '--case': (o, v) => { o.cases = list(v) },
      '--keys': (o, v) => { o.keys = Number(v) },
      '--sets': (o, v) => { o.sets = Number(v) },
      '--pick-worker': (o, v) => { o.worker = v },
    },
    help: 'node bench/strategies.js [--json] [--only quality,movement,pick,build] [--case <pick cases>] [--keys N] [--sets N] [--no-isolate]',
  })
  for (const s of o.only) if (!SECTIONS.includes(s)) die(`--only: unknown section ${s} (${SECTIONS.join(', ')})`)
  for (const n of o.cases ?? []) if (!PICK_CASES.some(c => c.name === n)) die(`--case: unknown case ${n} (${PICK_CASES.map(c => c.name).join(', ')})`)
  if (!Number.isInteger(o.keys) || o.keys < 1000) die('--keys: expected an integer ≥ 1000')
  if (!Number.isInteger(o.sets) || o.sets < 1) die('--sets: expected an integer ≥ 1')
  return o
}

const die = (msg) => dieWith('bench/strategies.js', msg)

// ───────────────────────────── summary ─────────────────────────────

function summarize (res) {
  const out = []
  for (const r of res.quality?.rows ?? []) if (r.verdict) out.push({ check: `quality ${r.algorithm} N=${r.n} exact max/mean ≤ ${r.target.toFixed(2)}`, value: `median ${f3(r.exactMedian)}, worst ${f3(r.exactWorst)}`, verdict: r.verdict })
  for (const r of res.movement?.rows ?? []) {
    if (r.target) out.push({ check: `movement ${r.algorithm} ${r.change} ratio ${r.target.join('–')}`, value: `${f3(r.ratio)} (sets ${f3(r.ratioMin)}–${f3(r.ratioMax)}), unnecessary ${r.unnecessary}`, verdict: r.verdict })
  }
  if (res.movement) out.push({ check: 'consistentHash strategy agrees with its table', value: `${res.movement.agreement.mismatches} mismatches`, verdict: res.movement.agreement.mismatches === 0 ? 'PASS' : 'FAIL' })
  if (res.quality) out.push({ check: 'ring points recomputed = built Ring', value: `${res.quality.ringModelMismatches} mismatches`, verdict: res.quality.ringModelMismatches === 0 ? 'PASS' : 'FAIL' })
  for (const r of res.pick?.rows ?? []) if (r.verdict) out.push({ check: `pick ${r.label} ≤ ${r.target} ns`, value: `${f1(r.nsMedian)} ns`, verdict: r.verdict })
  return out
}

// ───────────────────────────── main ─────────────────────────────

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  if (opts.worker !== undefined) {
    try {
      process.send(await runPickCase(opts.worker))
    } catch (err) {
      process.send({ error: String(err?.stack ?? err) })
    }
    return
  }
  const args = process.argv.slice(2).join(' ')
  const command = process.env.npm_lifecycle_event === 'bench:strategies'
    ? `npm run bench:strategies${args ? ` -- ${args}` : ''}  (node bench/strategies.js${args ? ` ${args}` : ''})`
    : `node ${[...process.execArgv, 'bench/strategies.js'].join(' ')}${args ? ` ${args}` : ''}`
  const machine = { ...describeMachine(), loadStart: os.loadavg().map(x => round(x, 2)) }
  const header = [
    'Affinity strategy benchmark (@affinity/core, built dist)',
    ...machineLines(machine, command, 9),
    `load:    ${os.loadavg().map(x => x.toFixed(2)).join(' ')} (1/5/15-min load average at start; timings assume an otherwise idle machine)`,
    `params:  ring vnodes ${DEFAULT_VNODES} (DEFAULT_VNODES), maglev table ${DEFAULT_MAGLEV_SIZE} (DEFAULT_MAGLEV_SIZE), ${opts.keys.toLocaleString('en-US')} keys, ${opts.sets} id sets`,
    '',
  ].join('\n')
  const emit = (text) => { if (!opts.json) process.stdout.write(text + '\n') }
  emit(header)

  const t0 = nowNs()
  const res = { machine, command, date: new Date().toISOString(), params: { vnodes: DEFAULT_VNODES, maglevSize: DEFAULT_MAGLEV_SIZE, keys: opts.keys, sets: opts.sets, keySeed: KEY_SEED } }
  const need = (s) => opts.only.includes(s)
  let keys
  if (need('quality') || need('movement')) {
    progress(`hashing ${opts.keys.toLocaleString('en-US')} keys`)
    keys = makeKeys(opts.keys)
  }
  res.seconds = {}
  const section = async (name, run, print) => {
    const ts = nowNs()
    res[name] = await run()
    res.seconds[name] = round(msSince(ts) / 1000, 1)
    emit(print(res[name]) + `(${name}: ${res.seconds[name]} s)\n`)
  }
  if (need('quality')) await section('quality', () => quality(opts, keys), printQuality)
  if (need('movement')) await section('movement', () => movement(keys), printMovement)
  if (need('pick')) await section('pick', () => pick(opts), printPick)
  if (need('build')) await section('build', () => build(), printBuild)
  res.summary = summarize(res)
  res.totalSeconds = round(msSince(t0) / 1000, 1)
  if (res.summary.length > 0) {
    emit(table('Summary of targets', [
      { label: 'check', key: 'check', left: true },
      { label: 'measured', key: 'value', left: true },
      { label: 'verdict', key: 'verdict', left: true },
    ], res.summary))
  }
  res.loadAverage = { start: machine.loadStart, end: os.loadavg().map(x => round(x, 2)) }
  emit(`total: ${res.totalSeconds} s; load average at end ${res.loadAverage.end.join(' ')}`)
  if (opts.json) process.stdout.write(JSON.stringify(res, null, 2) + '\n')
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  process.exit(1)
})
