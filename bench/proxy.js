// Side-by-side proxy benchmark (the BUILT packages: run `tsc -b` first, or
// `npm run bench:proxy`). One command, one machine, one load generator, measures in turn:
//   direct          autocannon straight to one upstream (the ceiling)
//   floor           node:http + undici Pool, round robin, headers copied, bodies piped, nothing
//                   else (the least a Node proxy can cost: every door's CPU/request is divided by it)
//   core-<s>        the Affinity core on plain node:http (docs/core.md "Using the core directly"),
//                   for <s> in roundRobin and stickyCookie
//   node-hello      plain node:http answering by itself (the server side every door pays)
//   express-hello   Express 5 answering by itself, no proxying (Express's own cost per request)
//   …+createServer  express-hello, express-roundRobin, express-stickyCookie on a server from
//                   @affinity/express createServer(app) (req/res born with the app's prototypes)
//   fastify-proxy   bare @fastify/http-proxy, round-robin getUpstream (the Fastify baseline)
//   fastify-<s>     Affinity's Fastify plugin, for each strategy <s>
//   express-hpm     Express 5 + http-proxy-middleware 3, round-robin router, keep-alive agent
//                   (the Express baseline: the strict one the targets are checked against)
//   express-hpm-noagent  the same with http-proxy-middleware's defaults: no agent, a new upstream
//                   connection per request (what users get out of the box; informational target lines)
//   express-<s>     Affinity's Express middleware, for each strategy <s>
//   nginx-hash      nginx `hash $http_x_user consistent`   (when nginx is installed)
//   nginx-iphash    nginx `ip_hash`                         (when nginx is installed)
// with <s> in roundRobin, leastConnections, stickyCookie, stickyIp, hashRing, hashMaglev, ipHash.
//
// Processes: the three upstreams (tiny keep-alive node:http servers answering a small JSON
// body) run in one child process of their own; each proxy runs in a child process of its
// own (nginx: master + 1 worker), so the proxy under test has a process to itself; the load
// generator (autocannon, programmatic API) runs here, in the parent. Every child is stopped
// at the end, on Ctrl-C / SIGTERM, and (through the upstreams process) if the parent is killed.
//
// Traffic looks like returning users: a pool of --users (default 1,000) users, each with its
// own x-user header, X-Forwarded-For address and app cookie, each on a keep-alive connection
// of its own (user i on connection i mod --connections, each connection cycling its users);
// every proxy trusts X-Forwarded-For (Fastify trustProxy, Express `trust proxy`, nginx realip), so ipHash and
// stickyIp see 1,000 distinct clients. Before measuring a target, each user makes one request
// through it (the correctness check: 200 from an upstream; for stickyCookie this is where
// the user gets a valid balancer cookie, which all of its later requests carry), then 100
// returning users are checked to stay on their upstream (sticky strategies) with no new
// Set-Cookie.
//
// Rounds are interleaved: every target is started, checked and warmed up (--warmup s) first
// and stays up, idle, while the others run; then each of the --rounds rounds measures every
// target in turn (baselines, then each strategy's Fastify and Express side by side; reverse
// order on odd rounds), each for one autocannon run: --rewarm s not counted, then --duration s.
// This machine (a 2-vCPU VM) has slow spells lasting a minute or more (the same proxy needing
// twice the CPU per request); interleaving spreads them over all targets instead of
// penalising whichever ran then (--sequential: one target at a time instead).
// req/s, p50 and p99 are medians over rounds (latency percentiles from every response's own
// time: autocannon's histogram rounds to whole ms); ratios are medians of per-round ratios.
// Non-2xx responses, errors and timeouts are counted and a target with any is flagged; so is
// a round where other processes used CPU.
// CPU use of the proxy, the upstreams and the load generator is read from /proc per round
// (µs of door CPU per request, user + system of the door's process(es): the figure least
// sensitive to the machine's spells), with the ratio to the floor's per round and as the
// median of the per-round ratios, and the CPUs each process's busy threads ran on.
// Pinning (default; --no-pin turns it off): the upstreams and autocannon on CPU 0 (0…n-2),
// each door alone on the last CPU, with taskset.
//
// Usage: node bench/proxy.js [--only <targets>] [--duration 2] [--rounds 8] [--warmup 2]
//          [--rewarm 0.4] [--connections 50] [--users 1000] [--sequential] [--no-pin]
//          [--json] [--json-out <file>] [--no-nginx] [--cpu-prof] [--cpu-prof-dir <dir>] [--list]
//          [--base-dir <built checkout>]
//   --no-pin      do not pin (default: each door on the last CPU, everything else on the others)
//   --base-dir    a built checkout of another commit (git worktree add <dir> <rev>; pnpm install;
//                 tsc -b there): every Affinity door (core-*, fastify-*, express-*) also runs on its
//                 packages as <name>@base, side by side in the same rounds ("÷ @base" column)
//   --only        comma-separated target names or globs (fastify-*, *Cookie) or groups:
//                 affinity, core, fastify, express, nginx, baselines; e.g. --only floor,core-*,fastify-proxy
//   --json        print the results as JSON on stdout (the table goes to stderr)
//   --json-out    also write the JSON to a file (the table stays on stdout)
//   --alloc-prof  sample each Node proxy child's allocations (V8 sampling heap profiler, collected
//                 objects included) and print where the bytes are allocated (--alloc-prof-dir <dir>)
//   --cpu-prof    run each proxy child (not nginx, not the upstreams) under `node --cpu-prof`
//                 and print where its CPU time went (profiles are kept in --cpu-prof-dir).
//                 Profiled figures are slower than unprofiled ones: do not compare them.
// Targets (the Targets table, issue 18): core-<s> CPU/req ≤ 1.05× the floor's; fastify-<s> CPU/req
// ≤ 1.10× the floor's and req/s ≥ 1.6× fastify-proxy; express-<s> CPU/req ≤ 1.1× (express-hello's
// + the floor's) and req/s ≥ 1.4× express-hpm (each the median of per-round ratios).
// Figures are printed, never asserted: a missed target is reported, the exit code stays 0.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { die as dieWith, list, parseArgs as parseWith } from './args.js'
import { machine } from './machine.js'
import { compare } from './proxy/compare.js'
import { allowedCpus, machineCpu, startPinning } from './proxy/cpu.js'
import { runAll } from './proxy/load.js'
import { round } from './numbers.js'
import { cleanupSync, findNginx, startUpstreams, stopChildrenOnExit } from './proxy/processes.js'
import { collectProfiles } from './proxy/profile.js'
import { runProxy } from './proxy/proxy-child.js'
import { printIntro, printResults } from './proxy/report.js'
import { hasTwin } from './proxy/packages.js'
import { selectTargets, TARGETS } from './proxy/targets.js'
import { PATH, runUpstreams } from './proxy/upstreams.js'
import { makeUsers } from './proxy/users.js'

// This file: the arguments, the run (main) and the children's roles. The children (the
// upstreams, each Node proxy) are this script again with --role; the parts live in bench/proxy/.

const SELF = fileURLToPath(import.meta.url)
const ROOT = path.resolve(path.dirname(SELF), '..')

// ───────────────────────────── arguments ─────────────────────────────

const die = (msg) => dieWith('bench/proxy.js', msg)

/** The options without a value, and what each sets. */
const FLAGS = {
  '--json': o => { o.json = true },
  '--no-nginx': o => { o.nginx = false },
  '--cpu-prof': o => { o.cpuProf = true },
  '--alloc-prof': o => { o.allocProf = true },
  '--list': o => { o.list = true },
  '--pin': o => { o.pin = true },
  '--no-pin': o => { o.pin = false },
  '--sequential': o => { o.sequential = true },
}
/** The options with a value (`--name value` or `--name=value`), and what each sets. */
const VALUES = {
  '--json-out': (o, v) => { o.jsonOut = v },
  '--base-dir': (o, v) => { o.baseDir = v },
  '--cpu-prof-dir': (o, v) => { o.cpuProf = true; o.cpuProfDir = v },
  '--alloc-prof-dir': (o, v) => { o.allocProf = true; o.allocProfDir = v },
  '--only': (o, v) => { o.only = list(v) },
  '--duration': (o, v) => { o.duration = Number(v) },
  '--warmup': (o, v) => { o.warmup = Number(v) },
  '--rewarm': (o, v) => { o.rewarm = Number(v) },
  '--rounds': (o, v) => { o.rounds = Number(v) },
  '--connections': (o, v) => { o.connections = Number(v) },
  '--users': (o, v) => { o.users = Number(v) },
  '--role': (o, v) => { o.role = v },
  '--target': (o, v) => { o.target = v },
}

/** --help: the header comment of this file. */
function helpText () {
  const lines = fs.readFileSync(SELF, 'utf8').split('\n')
  const end = lines.findIndex(l => !l.startsWith('//'))
  return lines.slice(0, end).map(l => l.slice(3)).join('\n')
}

function parseArgs (argv) {
  const o = parseWith(argv, {
    script: 'bench/proxy.js',
    flags: FLAGS,
    values: VALUES,
    help: helpText(),
    defaults: {
      only: undefined, duration: 2, warmup: 2, rewarm: 0.4, rounds: 8, connections: 50, users: 1000, sequential: false,
      json: false, jsonOut: undefined, nginx: true, cpuProf: false, cpuProfDir: undefined, allocProf: false, allocProfDir: undefined,
      list: false, role: undefined, target: undefined, pin: true, baseDir: undefined,
    },
  })
  if (!(o.duration > 0)) die('--duration: expected seconds > 0')
  if (!(o.warmup >= 0)) die('--warmup: expected seconds ≥ 0')
  if (!(o.rewarm >= 0)) die('--rewarm: expected seconds ≥ 0')
  if (!Number.isInteger(o.rounds) || o.rounds < 1) die('--rounds: expected an integer ≥ 1')
  if (!Number.isInteger(o.connections) || o.connections < 1) die('--connections: expected an integer ≥ 1')
  if (!Number.isInteger(o.users) || o.users < 1) die('--users: expected an integer ≥ 1')
  return o
}

// ───────────────────────────── the run ─────────────────────────────

function packageVersion (name) {
  try { return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version } catch { return '?' }
}

/** A profile directory: the one given, or a new one in the temp directory. */
function profileDir (given, kind) {
  const dir = given ?? path.join(os.tmpdir(), `affinity-proxy-${kind}-${new Date().toISOString().replace(/[:.]/g, '-')}`)
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

/** The command line as the user typed it, for the report. */
function commandLine () {
  const args = process.argv.slice(2).join(' ')
  return process.env.npm_lifecycle_event === 'bench:proxy'
    ? `npm run bench:proxy${args ? ` -- ${args}` : ''}  (node bench/proxy.js${args ? ` ${args}` : ''})`
    : `node ${[...process.execArgv, 'bench/proxy.js'].join(' ')}${args ? ` ${args}` : ''}`
}

function describeMachine (nginx) {
  let nginxVersion
  if (nginx !== undefined) {
    const v = spawnSync(nginx, ['-v'], { encoding: 'utf8' })
    nginxVersion = `${(v.stderr || v.stdout).trim().replace(/^nginx version: /, '')} (${nginx})`
  }
  return { ...machine(), nginx: nginxVersion }
}

async function main (opts) {
  if (opts.list) {
    for (const t of TARGETS) process.stdout.write(`${t.name.padEnd(22)} ${t.label}\n`)
    return
  }
  let targets
  try { targets = selectTargets(opts.only) } catch (err) { die(err.message) }
  if (opts.baseDir !== undefined) {
    if (!fs.existsSync(path.join(opts.baseDir, 'packages/core/dist/index.js'))) die(`--base-dir: no built checkout at ${opts.baseDir} (packages/core/dist/index.js missing)`)
    targets = targets.flatMap(t => (hasTwin(t) ? [t, { ...t, name: `${t.name}@base`, base: true, label: `${t.label} (${opts.baseDir})` }] : [t]))
  }
  const nginx = opts.nginx ? findNginx() : undefined
  const notes = []
  if (targets.some(t => t.nginx !== undefined) && nginx === undefined) {
    notes.push(opts.nginx ? 'nginx: not installed (not on PATH, not at /usr/sbin/nginx): nginx targets skipped' : 'nginx: --no-nginx: nginx targets skipped')
    targets = targets.filter(t => t.nginx === undefined)
  }
  if (opts.allocProf) opts.allocProfDir = profileDir(opts.allocProfDir, 'alloc')
  if (opts.cpuProf) opts.cpuProfDir = profileDir(opts.cpuProfDir, 'prof')
  const out = opts.json ? process.stderr : process.stdout
  const emit = (s) => out.write(s + '\n')

  // Pinned before anything starts: the children inherit the parent's CPUs until pinned themselves.
  opts.pinned = opts.pin && startPinning()
  if (opts.pin && !opts.pinned) notes.push('pinning: taskset failed (or one CPU): nothing pinned')
  const command = commandLine()
  const host = describeMachine(nginx)
  const versions = Object.fromEntries(['autocannon', 'fastify', '@fastify/http-proxy', 'express', 'http-proxy-middleware', 'undici'].map(p => [p, packageVersion(p)]))
  const loadStart = os.loadavg().map(x => round(x, 2))
  const m0 = machineCpu()
  await sleep(1000)
  const m1 = machineCpu()
  const busyBefore = m0 && m1 ? round(m1.busy - m0.busy, 2) : undefined
  emit(printIntro({ opts, machine: host, versions, command, loadStart, busyBefore, targets, notes }))

  const t0 = Date.now()
  const upstreams = await startUpstreams()
  const pinning = `load generator (pid ${process.pid}) on CPU ${allowedCpus(process.pid)}, upstreams (pid ${upstreams.proc.pid}) on CPU ${allowedCpus(upstreams.proc.pid)}`
  const ctx = { upstreams, origins: upstreams.origins, users: makeUsers(opts.users), nginx }
  const states = targets.map(target => ({
    target,
    row: { name: target.name, group: target.group, label: target.label, strategy: target.strategy?.key, kind: target.strategy?.kind, createServer: target.createServer, base: target.base },
  }))
  await runAll(states, opts, ctx)
  const rows = states.map(st => st.row)
  upstreams.entry.kill('SIGTERM')
  // Interleaved rounds are paired: ratios are medians of per-round ratios.
  const checks = compare(rows, !opts.sequential)
  emit(printResults(rows, checks, opts))
  const loadEnd = os.loadavg().map(x => round(x, 2))
  const totalSeconds = round((Date.now() - t0) / 1000, 0)
  const workers = [...new Set(rows.filter(r => r.nginxWorkers !== undefined).map(r => r.nginxWorkers))]
  const doorCpus = [...new Set(rows.map(r => r.allowedCpus).filter(Boolean))]
  emit(`allowed CPUs (Cpus_allowed_list): ${pinning}, doors on CPU ${doorCpus.join(', ') || '—'}`)
  if (workers.length > 0) emit(`nginx worker processes: ${workers.join(', ')} (counted from the master's children)`)
  emit(`total: ${totalSeconds} s; load average at start ${loadStart.join(' ')}, at end ${loadEnd.join(' ')}`)

  const profiles = collectProfiles(rows, opts, emit)
  const result = { machine: host, versions, command, date: new Date(t0).toISOString(), params: { duration: opts.duration, warmup: opts.warmup, rewarm: opts.rewarm, rounds: opts.rounds, sequential: opts.sequential, pin: opts.pinned, connections: opts.connections, users: opts.users, path: PATH, cpuProf: opts.cpuProf }, notes, loadAverage: { start: loadStart, end: loadEnd }, coresBusyBeforeStart: busyBefore, totalSeconds, targets: rows, checks, profiles }
  if (opts.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  if (opts.jsonOut !== undefined) fs.writeFileSync(opts.jsonOut, JSON.stringify(result, null, 2) + '\n')
}

// ───────────────────────────── roles ─────────────────────────────

const opts = parseArgs(process.argv.slice(2))
if (opts.role === 'upstreams') {
  await runUpstreams()
} else if (opts.role === 'proxy') {
  await runProxy(opts.target)
} else {
  stopChildrenOnExit()
  try {
    await main(opts)
  } catch (err) {
    process.stderr.write(`${err?.stack ?? err}\n`)
    process.exitCode = 1
  } finally {
    cleanupSync()
  }
}
