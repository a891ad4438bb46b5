// The frameworks' own ceiling: a hello-world app (no proxying, no Affinity) in node:http,
// Fastify 5 and Express 5, then the core forwarder alone (createBalancer + choose +
// forward, no adapter) inside node:http and inside an Express 5 middleware, proxying to
// three keep-alive upstreams run here. Each app is a child process, loaded by autocannon
// from here with the proxy benchmark's settings (50 connections, keep-alive). It answers
// the question the proxy benchmark raises: how much of Affinity Express's cost per
// request is Express's own, and how much the adapter's.
// Usage: node bench/frameworks.js [--rounds 5] [--duration 3] [--json]   (build first: npm run bench:frameworks)
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { parseArgs } from './args.js'
import { machine, machineLines } from './machine.js'
import { median } from './numbers.js'

const SELF = fileURLToPath(import.meta.url)
const APPS = ['node:http', 'fastify', 'express', 'node:http+core', 'express+core']
const BODY = JSON.stringify({ ok: true, server: 's1', n: 12345 })

/** The core forwarder with no adapter: what Affinity costs before any framework. */
async function coreHandler (origins) {
  const { createBalancer, roundRobin } = await import('@affinity/core')
  const balancer = createBalancer({ upstreams: origins, strategy: roundRobin() })
  return (req, res) => {
    const choice = balancer.choose({ method: req.method, url: req.url, headers: req.headers, ip: req.socket.remoteAddress, cookies: {}, protocol: 'http' })
    balancer.forward(choice, req, res, { path: req.url })
  }
}

async function serve (which, origins) {
  let server
  if (which === 'express+core') {
    const { default: express } = await import('express')
    const app = express()
    app.set('trust proxy', true)
    app.use(await coreHandler(origins))
    server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
  } else if (which === 'node:http+core') {
    const http = await import('node:http')
    server = http.createServer(await coreHandler(origins)).listen(0, '127.0.0.1')
    await once(server, 'listening')
  } else if (which === 'fastify') {
    const { default: Fastify } = await import('fastify')
    const app = Fastify({ logger: false, trustProxy: true })
    app.all('/*', (_req, reply) => { reply.header('content-type', 'application/json').send(BODY) })
    await app.listen({ port: 0, host: '127.0.0.1' })
    server = app.server
  } else if (which === 'express') {
    const { default: express } = await import('express')
    const app = express()
    app.set('trust proxy', true)
    app.use((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(BODY) })
    server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
  } else {
    const http = await import('node:http')
    server = http.createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(BODY) }).listen(0, '127.0.0.1')
    await once(server, 'listening')
  }
  process.send(server.address().port)
  process.on('disconnect', () => process.exit(0))
}


if (process.argv[2] === '--serve') {
  await serve(process.argv[3], JSON.parse(process.argv[4]))
} else {
  const http = await import('node:http')
  const upstreams = await Promise.all([0, 1, 2].map(() => new Promise(resolve => {
    const s = http.createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(BODY) })
    s.listen(0, '127.0.0.1', () => resolve(s))
  })))
  const origins = JSON.stringify(upstreams.map(s => `http://127.0.0.1:${s.address().port}`))
  const { rounds, duration, json } = parseArgs(process.argv.slice(2), {
    script: 'bench/frameworks.js',
    defaults: { rounds: 5, duration: 3, json: false },
    flags: { '--json': o => { o.json = true } },
    values: { '--rounds': (o, v) => { o.rounds = Number(v) }, '--duration': (o, v) => { o.duration = Number(v) } },
    help: 'node bench/frameworks.js [--rounds 5] [--duration 3] [--json]   (build first, or npm run bench:frameworks)',
  })
  const results = Object.fromEntries(APPS.map(a => [a, []]))
  // Interleaved rounds, so a slow spell of the machine hits every app alike.
  for (let r = 0; r < rounds; r++) {
    for (const app of APPS) {
      const child = fork(SELF, ['--serve', app, origins])
      const [port] = await once(child, 'message')
      const url = `http://127.0.0.1:${port}/api/cart`
      await autocannon({ url, connections: 50, duration: 1 })
      const res = await autocannon({ url, connections: 50, duration })
      results[app].push(res.requests.average)
      child.disconnect()
      await once(child, 'exit')
    }
  }
  const rows = APPS.map(app => ({ app, rps: Math.round(median(results[app])), rounds: results[app].map(Math.round) }))
  if (json) {
    process.stdout.write(JSON.stringify({ node: process.version, rounds, duration, rows }, null, 2) + '\n')
  } else {
    for (const line of machineLines(machine(), `node bench/frameworks.js ${process.argv.slice(2).join(' ')}`.trim(), 9)) console.log(line)
    console.log(`Hello world, then the core forwarder alone (req/s, median of ${rounds} interleaved rounds of ${duration} s, 50 connections)`)
    for (const r of rows) console.log(`${r.app.padEnd(14)} ${String(r.rps).padStart(7)}   rounds ${r.rounds.join(', ')}`)
    const by = Object.fromEntries(rows.map(r => [r.app, r.rps]))
    const us = (a, b) => (1e6 / by[a] - 1e6 / by[b]).toFixed(1)
    console.log(`fastify: ${us('fastify', 'node:http')} µs per request more than node:http; express: ${us('express', 'node:http')} µs more (wall time at this load)`)
    console.log(`proxying through the core forwarder adds ${us('node:http+core', 'node:http')} µs per request in node:http and ${us('express+core', 'express')} µs inside Express`)
  }
  for (const s of upstreams) s.close()
}
