// The Redis stick table under load (`npm run bench:redis`, or node bench/redis-store.js after
// `tsc -b`): requests per second and Redis commands per request for stickyIp over redisStore,
// the store of a base commit (--base, default: the last one doing GET + SET PX per sticky hit)
// against this tree's (one round trip per hit), on two real redis-server processes:
//   getex     a stock redis-server (GETEX: Redis ≥ 6.2)
//   no-getex  the same with `--rename-command GETEX ""` (what the store meets on Redis < 6.2)
// Targets: before@getex, after@getex, before@no-getex, after@no-getex. Each is a door of its
// own (the Affinity core on plain node:http, stickyIp({ store: redisStore({ client, prefix }) })
// with the client address from X-Forwarded-For) in a child process, forwarding to three
// keep-alive upstreams (bench/proxy/upstreams.js); autocannon drives it from here with
// 1,000 returning users (bench/proxy/users.js; user i on connection i mod 50), each placed by
// a first visit before the warm-up (100 of them checked to stay on their upstream). Rounds interleave the targets (reversed on odd rounds); each
// round: --rewarm s not counted, then --duration s, with INFO commandstats and the CPU time
// of the door and of redis-server read at both ends of the counted window. Commands per
// request count every command the door sent (the bench's own INFO left out); figures are
// medians over rounds, ratios medians of per-round ratios. Pinned like bench:proxy: each
// door alone on the last CPU, redis-server, the upstreams and autocannon on the others.
//
// The base store is read from git (`git show <base>:packages/redis/src/*.ts`), transpiled
// with TypeScript 5's transpileModule into a temporary directory, and imports this tree's
// built @affinity/core: only the store differs between before and after.
//
// Usage: node bench/redis-store.js [--base <rev>] [--rounds 6] [--duration 2] [--warmup 2]
//          [--rewarm 0.4] [--connections 50] [--users 1000] [--json]
import { execFileSync, fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from './args.js'
import { machine, machineLines } from './machine.js'
import { median, round } from './numbers.js'
import { checkAndPrime } from './proxy/check.js'
import { cpuBetween, cpuSnapshot, pinAs, startPinning } from './proxy/cpu.js'
import { load } from './proxy/load.js'
import { HOST, PATH, runUpstreams } from './proxy/upstreams.js'
import { makeUsers, userHeaders } from './proxy/users.js'

const SELF = fileURLToPath(import.meta.url)
const ROOT = path.resolve(path.dirname(SELF), '..')
const BASE = 'f1d06e2' // the last commit whose redisStore sends GET then SET PX on every sticky hit

/** --help: the header comment of this file. */
function helpText () {
  const lines = fs.readFileSync(SELF, 'utf8').split('\n')
  return lines.slice(0, lines.findIndex(l => !l.startsWith('//'))).map(l => l.slice(3)).join('\n')
}

const opts = parseArgs(process.argv.slice(2), {
  script: 'bench/redis-store.js',
  defaults: { base: BASE, rounds: 6, duration: 2, warmup: 2, rewarm: 0.4, connections: 50, users: 1000, json: false, role: undefined },
  flags: { '--json': o => { o.json = true } },
  values: {
    '--base': (o, v) => { o.base = v },
    '--rounds': (o, v) => { o.rounds = Number(v) },
    '--duration': (o, v) => { o.duration = Number(v) },
    '--warmup': (o, v) => { o.warmup = Number(v) },
    '--rewarm': (o, v) => { o.rewarm = Number(v) },
    '--connections': (o, v) => { o.connections = Number(v) },
    '--users': (o, v) => { o.users = Number(v) },
    '--role': (o, v) => { o.role = v },
  },
  help: helpText(),
})

// ───────────────────────────── the base store, from git ─────────────────────────────

/** Writes the base commit's store, transpiled, to a temporary directory; returns its module URL. */
async function baseStore (rev, dir) {
  const { default: ts } = await import('typescript')
  const core = pathToFileURL(createRequire(path.join(ROOT, 'packages/redis/package.json')).resolve('@affinity/core')).href
  for (const file of ['redis-store', 'errors']) {
    const src = execFileSync('git', ['show', `${rev}:packages/redis/src/${file}.ts`], { cwd: ROOT, encoding: 'utf8' })
    const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
    fs.writeFileSync(path.join(dir, `${file}.js`), js.replaceAll("'@affinity/core'", `'${core}'`))
  }
  return pathToFileURL(path.join(dir, 'redis-store.js')).href
}

// ───────────────────────────── the door (child) ─────────────────────────────

async function door () {
  const { storeUrl, redisPort, prefix, origins } = JSON.parse(process.env.AFFINITY_BENCH_DOOR)
  const { Redis } = await import('ioredis')
  const { createBalancer, stickyIp } = await import('@affinity/core')
  const { redisStore } = await import(storeUrl)
  const client = new Redis({ host: HOST, port: redisPort })
  await once(client, 'ready')
  const store = redisStore({ client, prefix, timeoutMs: 1000 })
  const balancer = createBalancer({ upstreams: origins, strategy: stickyIp({ store }) })
  const server = http.createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
    const xff = req.headers['x-forwarded-for']
    const choice = balancer.choose({ method: req.method, url: req.url, headers: req.headers, ip: typeof xff === 'string' ? xff : req.socket.remoteAddress, cookies: {}, protocol: 'http' })
    if (choice instanceof Promise) choice.then(c => balancer.forward(c, req, res, { path: req.url }))
    else balancer.forward(choice, req, res, { path: req.url })
  })
  server.listen(0, HOST)
  await once(server, 'listening')
  process.on('disconnect', () => process.exit(0))
  process.on('message', (m) => { if (m === 'stats') process.send({ stats: store.stats() }) })
  process.send({ port: server.address().port })
}

// ───────────────────────────── the run (parent) ─────────────────────────────

function startRedis (args) {
  const port = 20000 + Math.floor(Math.random() * 20000)
  const proc = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', os.tmpdir(), ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    let out = ''
    proc.stdout.on('data', (d) => { out += d; if (out.includes('Ready to accept connections')) resolve({ proc, port }) })
    proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)))
  })
}

/** Calls per command, from INFO commandstats (our own INFO, CONFIG and CLIENT left out). */
async function commandCalls (client) {
  const out = {}
  for (const m of (await client.info('commandstats')).matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    if (!/^(info|config|client)/.test(m[1])) out[m[1]] = Number(m[2])
  }
  return out
}

const diff = (a, b) => Object.fromEntries(Object.keys(b).map(k => [k, b[k] - (a[k] ?? 0)]).filter(([, v]) => v > 0))

async function main () {
  const log = (s) => (opts.json ? process.stderr : process.stdout).write(`${s}\n`)
  const pinned = startPinning()
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'affinity-bench-redis-'))
  const children = []
  process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); fs.rmSync(tmp, { recursive: true, force: true }) })
  const before = await baseStore(opts.base, tmp)
  const after = pathToFileURL(path.join(ROOT, 'packages/redis/dist/index.js')).href
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim()

  const upstreams = fork(SELF, ['--role', 'upstreams'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  children.push(upstreams)
  const [{ origins }] = await once(upstreams, 'message')
  pinAs(upstreams.pid, 'rest')
  const { Redis } = await import('ioredis')
  const servers = {}
  for (const [name, args] of [['getex', []], ['no-getex', ['--rename-command', 'GETEX', '']]]) {
    const s = await startRedis(args)
    children.push(s.proc)
    pinAs(s.proc.pid, 'rest')
    s.client = new Redis({ host: HOST, port: s.port })
    await once(s.client, 'ready')
    s.hasGetex = (await s.client.call('COMMAND', 'INFO', 'GETEX'))[0] !== null
    servers[name] = s
  }
  const users = makeUsers(opts.users)
  const requests = users.map(u => ({ method: 'GET', path: PATH, headers: userHeaders(u) }))

  for (const line of machineLines(machine(), `node bench/redis-store.js ${process.argv.slice(2).join(' ')}`.trim(), 10)) log(line)
  log(`redis:    ${redisVersion}; getex: stock (GETEX ${servers.getex.hasGetex ? 'present' : 'absent'}), no-getex: --rename-command GETEX "" (GETEX ${servers['no-getex'].hasGetex ? 'present' : 'absent'})`)
  log(`stores:   before = redisStore of ${opts.base} (git show, transpiled), after = this tree's packages/redis/dist`)
  log(`load:     autocannon, ${opts.connections} connections, ${opts.users.toLocaleString('en-US')} returning users (X-Forwarded-For), stickyIp ttl 30 min; warm-up ${opts.warmup} s,`)
  log(`          then ${opts.rounds} interleaved rounds × (${opts.rewarm} s not counted + ${opts.duration} s); ${pinned ? `door on CPU ${os.cpus().length - 1}, the rest on the others` : 'nothing pinned'}`)
  log('')

  const targets = []
  for (const server of ['getex', 'no-getex']) {
    for (const [which, storeUrl] of [['before', before], ['after', after]]) {
      const name = `${which}@${server}`
      const env = { ...process.env, AFFINITY_BENCH_DOOR: JSON.stringify({ storeUrl, redisPort: servers[server].port, prefix: `${name}:`, origins }) }
      const proc = fork(SELF, ['--role', 'door'], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      children.push(proc)
      const [{ port }] = await once(proc, 'message')
      pinAs(proc.pid, 'proxy')
      // Every user's first visit (placed and bound in Redis), 100 checked to stay, then the warm-up.
      const check = await checkAndPrime({ group: 'redis', strategy: { sticky: true } }, port, users)
      if (!check.ok || check.problems.length > 0) throw new Error(`${name}: ${check.problems.join('; ')}`)
      await load(port, requests, opts, opts.warmup)
      targets.push({ name, which, server, proc, port, rounds: [] })
    }
  }
  for (let k = 0; k < opts.rounds; k++) {
    for (const t of k % 2 === 0 ? targets : [...targets].reverse()) {
      const s = servers[t.server]
      let c0, cpu0
      const r = await load(t.port, requests, opts, opts.duration, opts.rewarm, () => {
        cpu0 = cpuSnapshot([t.proc.pid], s.proc.pid)
        c0 = commandCalls(s.client)
      })
      const cpu = cpuBetween(cpu0, cpuSnapshot([t.proc.pid], s.proc.pid))
      const calls = diff(await c0, await commandCalls(s.client))
      const commands = Object.values(calls).reduce((a, b) => a + b, 0)
      const perReq = Object.fromEntries(Object.entries(calls).map(([c, n]) => [c, round(n / r.responses, 3)]))
      t.rounds.push({ rps: r.rps, commandsPerRequest: commands / r.responses, perReq, doorUs: (cpu.proxy / r.rps) * 1e6, redisUs: (cpu.upstreams / r.rps) * 1e6, errors: r.errors + r.non2xx })
      process.stderr.write(`  … ${t.name} round ${k + 1}: ${Math.round(r.rps)} req/s, ${(commands / r.responses).toFixed(3)} Redis commands/request ${JSON.stringify(perReq)}, door ${((cpu.proxy / r.rps) * 1e6).toFixed(0)} µs/req, redis-server ${((cpu.upstreams / r.rps) * 1e6).toFixed(1)} µs/req\n`)
    }
  }
  for (const t of targets) {
    t.proc.send('stats')
    t.storeStats = (await once(t.proc, 'message'))[0].stats
  }

  const med = (t, f) => median(t.rounds.map(f))
  const rows = targets.map(t => {
    const base = targets.find(x => x.server === t.server && x.which === 'before')
    return {
      target: t.name,
      rps: Math.round(med(t, r => r.rps)),
      commandsPerRequest: round(med(t, r => r.commandsPerRequest), 3),
      perRequest: t.rounds.at(-1).perReq,
      doorUsPerReq: round(med(t, r => r.doorUs), 1),
      redisUsPerReq: round(med(t, r => r.redisUs), 1),
      rpsVsBefore: t === base ? undefined : round(median(t.rounds.map((r, k) => r.rps / base.rounds[k].rps)), 3),
      errors: t.rounds.reduce((a, r) => a + r.errors, 0),
      store: t.storeStats,
    }
  })
  const pad = (v, n) => String(v ?? '—').padStart(n)
  log(`${'target'.padEnd(16)} ${pad('req/s', 7)} ${pad('÷ before', 9)} ${pad('Redis cmds/req', 14)}  ${'per command (last round)'.padEnd(34)} ${pad('door µs/req', 11)} ${pad('redis µs/req', 12)} ${pad('errors', 6)}  store`)
  for (const r of rows) {
    log(`${r.target.padEnd(16)} ${pad(r.rps.toLocaleString('en-US'), 7)} ${pad(r.rpsVsBefore === undefined ? undefined : `${r.rpsVsBefore.toFixed(2)}×`, 9)} ${pad(r.commandsPerRequest.toFixed(3), 14)}  ${Object.entries(r.perRequest).map(([c, n]) => `${c} ${n}`).join(', ').padEnd(34)} ${pad(r.doorUsPerReq, 11)} ${pad(r.redisUsPerReq, 12)} ${pad(r.errors, 6)}  ${r.store.degraded ? 'DEGRADED ' : ''}errors ${r.store.errors}, timeouts ${r.store.timeouts}`)
  }
  log('(req/s, commands/request, CPU: medians over rounds; ÷ before: median of per-round ratios against before@<same server>)')
  if (opts.json) process.stdout.write(JSON.stringify({ machine: machine(), redis: redisVersion, base: opts.base, params: opts, rows }, null, 2) + '\n')
  for (const s of Object.values(servers)) s.client.disconnect()
  process.exit(0)
}

if (opts.role === 'upstreams') await runUpstreams()
else if (opts.role === 'door') await door()
else await main()
