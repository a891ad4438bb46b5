// Memory benchmark for the adapters (the BUILT packages: run `tsc -b` first, or
// `npm run bench:memory`). Streams `--size` MiB (default 1024) through the balancer in
// both directions, for the Fastify plugin and the Express middleware:
//   upload    client ──POST──► balancer ──► upstream that discards and counts
//   download  client ◄── balancer ◄── upstream that streams the bytes
// and prints the balancer process's RSS growth (the highest RSS sampled during the
// transfer minus the RSS just before it) and the throughput, with PASS/FAIL against
// the 96 MiB target (bodies stream through; the process memory must not grow with the body).
//
// The balancer runs in a child process of its own (this file, forked with --child),
// so the RSS measured is the balancer's only; the upstream and the client run here,
// in the parent. The child samples its own RSS every 10 ms. Before each transfer the
// child is warmed up (one small upload and download went through already) and
// garbage-collected (--expose-gc), so "before" is its settled steady state: the
// growth is what the transfer itself costs. For reference, the peak is also given
// against the RSS the child had when it started listening, before any traffic.
//
// Usage: node bench/memory.js [--size <MiB>] [--json] [--only fastify,express] [--strict]
//        node bench/memory.js --users [--counts 100000,1000000] [--json]
//   --json    print the results as JSON on stdout (progress goes to stderr)
//   --strict  exit with code 1 when a transfer misses the target (default: report only)
//   --users   instead: memory per bound user, stickyIp's in-memory table and stickyCookie's
//             token cache at each of --counts users (bench/memory-users.js)
import { fork } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { die as dieWith, list, parseArgs as parseWith } from './args.js'
import { machine, machineLines } from './machine.js'
import { runUsers } from './memory-users.js'

const SELF = fileURLToPath(import.meta.url)
const MiB = 2 ** 20
const TARGET_MIB = 96
const ADAPTERS = ['fastify', 'express']
const DIRECTIONS = ['upload', 'download']
const PREFIX = '/lb'
const HOST = '127.0.0.1'
const CHUNK = Buffer.alloc(64 * 1024)
for (let i = 0; i < CHUNK.length; i++) CHUNK[i] = (i * 31 + 7) & 255

const die = (message) => dieWith('bench/memory.js', message)

function parseArgs (argv) {
  const o = parseWith(argv, {
    script: 'bench/memory.js',
    defaults: { size: 1024, json: false, only: ADAPTERS, strict: false, child: undefined, users: false, counts: [100_000, 1_000_000] },
    flags: { '--json': o => { o.json = true }, '--strict': o => { o.strict = true }, '--users': o => { o.users = true } },
    values: {
      '--counts': (o, v) => { o.counts = list(v).map(Number) },
      '--size': (o, v) => { o.size = Number(v) },
      '--only': (o, v) => { o.only = list(v) },
      '--child': (o, v) => { o.child = v },
    },
    help: 'node bench/memory.js [--size <MiB>] [--json] [--only fastify,express] [--strict]\n' +
      'node bench/memory.js --users [--counts 100000,1000000] [--json]   (memory per bound user)',
  })
  if (!o.counts.every(n => Number.isInteger(n) && n > 0)) die('--counts expects whole numbers > 0, comma-separated')
  if (!(Number.isFinite(o.size) && o.size > 0)) die('--size expects a positive number of MiB')
  for (const a of o.only) if (!ADAPTERS.includes(a)) die(`unknown adapter ${a} (expected ${ADAPTERS.join(', ')})`)
  return o
}

const args = parseArgs(process.argv.slice(2))

// ───────────────────────────── the balancer (child) ─────────────────────────────

async function child (adapter) {
  const upstream = process.env.AFFINITY_BENCH_UPSTREAM
  const { createBalancer, roundRobin } = await import('@affinity/core')
  const balancer = createBalancer({ upstreams: [upstream], strategy: roundRobin() })
  let port
  let close
  if (adapter === 'fastify') {
    const { default: Fastify } = await import('fastify')
    const { default: affinity } = await import('@affinity/fastify')
    const app = Fastify({ logger: false })
    await app.register(affinity, { prefix: PREFIX, balancer })
    await app.listen({ port: 0, host: HOST })
    port = app.server.address().port
    close = () => app.close()
  } else {
    const { default: express } = await import('express')
    const { affinity } = await import('@affinity/express')
    const app = express()
    const lb = affinity({ balancer })
    app.use(PREFIX, lb)
    const server = app.listen(0, HOST)
    await once(server, 'listening')
    port = server.address().port
    close = async () => {
      await lb.close()
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  }

  let peak = 0
  const sample = () => { const r = process.memoryUsage.rss(); if (r > peak) peak = r }
  setInterval(sample, 10).unref()

  process.on('message', async (msg) => {
    if (msg.type === 'mark') {
      // Settle: finish what the warm-up left for the collector, then start from here.
      for (let i = 0; i < 3; i++) { globalThis.gc?.(); await new Promise(resolve => setImmediate(resolve)) }
      const rss = process.memoryUsage.rss()
      peak = rss
      process.send({ type: 'marked', rss })
    } else if (msg.type === 'peak') {
      sample()
      process.send({ type: 'peak', peak, rss: process.memoryUsage.rss(), heapUsed: process.memoryUsage().heapUsed })
    } else if (msg.type === 'exit') {
      await close()
      await balancer.close()
      process.exit(0)
    }
  })
  globalThis.gc?.()
  process.send({ type: 'ready', port, rss: process.memoryUsage.rss() })
}

// ───────────────────────────── upstream and client (parent) ─────────────────────────────

function startUpstream () {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x')
    if (url.pathname === '/upload') {
      let bytes = 0
      req.on('data', (c) => { bytes += c.length })
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ bytes }))
      })
      return
    }
    if (url.pathname === '/download') {
      const total = Number(url.searchParams.get('bytes'))
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total })
      let sent = 0
      const pump = () => {
        while (sent < total) {
          const n = Math.min(CHUNK.length, total - sent)
          sent += n
          if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) { res.once('drain', pump); return }
        }
        res.end()
      }
      pump()
      return
    }
    res.writeHead(404).end()
  })
  return new Promise(resolve => server.listen(0, HOST, () => resolve(server)))
}

function upload (port, size) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: HOST, port, method: 'POST', path: `${PREFIX}/upload`, agent: false,
      headers: { 'content-type': 'application/octet-stream', 'content-length': size },
    }, (res) => {
      const chunks = []
      res.on('data', c => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`upload: status ${res.statusCode}: ${Buffer.concat(chunks)}`))
        const { bytes } = JSON.parse(Buffer.concat(chunks).toString())
        if (bytes !== size) return reject(new Error(`upload: the upstream counted ${bytes} bytes of ${size}`))
        resolve(bytes)
      })
    })
    req.on('error', reject)
    let sent = 0
    const write = () => {
      while (sent < size) {
        const n = Math.min(CHUNK.length, size - sent)
        sent += n
        if (!req.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) { req.once('drain', write); return }
      }
      req.end()
    }
    write()
  })
}

function download (port, size) {
  return new Promise((resolve, reject) => {
    http.get({ host: HOST, port, path: `${PREFIX}/download?bytes=${size}`, agent: false }, (res) => {
      let bytes = 0
      res.on('data', (c) => { bytes += c.length })
      res.on('error', reject)
      res.on('aborted', () => reject(new Error('download: aborted')))
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`download: status ${res.statusCode}`))
        if (bytes !== size) return reject(new Error(`download: received ${bytes} bytes of ${size}`))
        resolve(bytes)
      })
    }).on('error', reject)
  })
}

/** Sends a message to the child and waits for the reply of `type`. */
function ask (proc, msg, type) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => { if (m.type === type) { cleanup(); resolve(m) } }
    const onExit = (code) => { cleanup(); reject(new Error(`the balancer process exited (${code})`)) }
    const cleanup = () => { proc.off('message', onMessage); proc.off('exit', onExit) }
    proc.on('message', onMessage)
    proc.once('exit', onExit)
    if (msg !== undefined) proc.send(msg)
  })
}

const fmt = (bytes) => (bytes / MiB).toFixed(1)

async function main () {
  const log = (s) => (args.json ? process.stderr : process.stdout).write(`${s}\n`)
  const size = Math.round(args.size * MiB)
  const upstream = await startUpstream()
  const upstreamUrl = `http://${HOST}:${upstream.address().port}`
  log(`Affinity memory benchmark: ${fmt(size)} MiB per transfer through the balancer in its own process`)
  log(`node ${process.version}, ${os.platform()} ${os.arch()}, ${os.cpus().length} CPUs; target: RSS growth ≤ ${TARGET_MIB} MiB`)
  const results = []
  for (const adapter of args.only) {
    const proc = fork(SELF, ['--child', adapter], {
      execArgv: ['--expose-gc'],
      env: { ...process.env, AFFINITY_BENCH_UPSTREAM: upstreamUrl },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    try {
      // RSS when the app is listening, before any traffic: for the "since start" figure.
      const { port, rss: start } = await ask(proc, undefined, 'ready')
      // Warm-up: modules loaded, JIT warm, undici pool and sockets in place.
      await upload(port, 8 * MiB)
      await download(port, 8 * MiB)
      for (const direction of DIRECTIONS) {
        const { rss: before } = await ask(proc, { type: 'mark' }, 'marked')
        const started = process.hrtime.bigint()
        await (direction === 'upload' ? upload(port, size) : download(port, size))
        const seconds = Number(process.hrtime.bigint() - started) / 1e9
        const { peak, rss: after } = await ask(proc, { type: 'peak' }, 'peak')
        const growth = peak - before
        const r = {
          adapter,
          direction,
          bytes: size,
          rssStartMiB: +fmt(start),
          rssBeforeMiB: +fmt(before),
          rssPeakMiB: +fmt(peak),
          rssAfterMiB: +fmt(after),
          rssGrowthMiB: +fmt(growth),
          rssGrowthSinceStartMiB: +fmt(peak - start),
          seconds: +seconds.toFixed(2),
          throughputMiBs: +(size / MiB / seconds).toFixed(1),
          targetMiB: TARGET_MIB,
          pass: growth <= TARGET_MIB * MiB,
        }
        results.push(r)
        log(`${adapter.padEnd(8)} ${direction.padEnd(9)} RSS ${fmt(before).padStart(6)} → peak ${fmt(peak).padStart(6)} MiB: ` +
          `growth ${fmt(growth).padStart(5)} MiB  ${r.seconds.toFixed(2).padStart(6)} s  ${r.throughputMiBs.toFixed(1).padStart(7)} MiB/s  ` +
          `${r.pass ? 'PASS' : 'FAIL'} (≤ ${TARGET_MIB} MiB)  [+${fmt(peak - start)} MiB since the app started]`)
      }
      proc.send({ type: 'exit' })
      await once(proc, 'exit')
    } catch (err) {
      proc.kill()
      upstream.close()
      die(`${adapter}: ${err.message}`)
    }
  }
  upstream.close()
  const pass = results.every(r => r.pass)
  log(pass ? `PASS: every transfer stayed within ${TARGET_MIB} MiB of RSS growth` : `FAIL: ${results.filter(r => !r.pass).length} transfer(s) grew the balancer's RSS by more than ${TARGET_MIB} MiB`)
  if (args.json) {
    process.stdout.write(JSON.stringify({
      sizeMiB: size / MiB, targetMiB: TARGET_MIB, node: process.version, platform: `${os.platform()} ${os.arch()}`, cpus: os.cpus().length, results, pass,
    }, null, 2) + '\n')
  }
  process.exitCode = !pass && args.strict ? 1 : 0
}

async function users () {
  const log = (s) => (args.json ? process.stderr : process.stdout).write(`${s}\n`)
  const command = `node bench/memory.js ${process.argv.slice(2).join(' ')}`
  for (const line of machineLines(machine(), command, 9)) log(line)
  const rows = await runUsers({ counts: args.counts, log })
  if (args.json) process.stdout.write(JSON.stringify({ machine: machine(), command, rows }, null, 2) + '\n')
}

if (args.child !== undefined) await child(args.child)
else if (args.users) await users()
else await main()
