// The frameworks' own ceiling: a hello-world app (no proxying, no Affinity) in node:http,
// Fastify 5 and Express 5, each in a child process, loaded by autocannon from here with
// the proxy benchmark's settings (50 connections, keep-alive). It answers one question the
// proxy benchmark raises: how much of Affinity Express's cost per request is Express's own.
// Usage: node bench/frameworks.js [--rounds 3] [--duration 3] [--json]
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

const SELF = fileURLToPath(import.meta.url)
const APPS = ['node:http', 'fastify', 'express']
const BODY = JSON.stringify({ ok: true, server: 's1', n: 12345 })

async function serve (which) {
  let server
  if (which === 'fastify') {
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

function arg (name, fallback) {
  const i = process.argv.indexOf(name)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}

if (process.argv[2] === '--serve') {
  await serve(process.argv[3])
} else {
  const rounds = arg('--rounds', 3)
  const duration = arg('--duration', 3)
  const results = Object.fromEntries(APPS.map(a => [a, []]))
  // Interleaved rounds, so a slow spell of the machine hits every app alike.
  for (let r = 0; r < rounds; r++) {
    for (const app of APPS) {
      const child = fork(SELF, ['--serve', app])
      const [port] = await once(child, 'message')
      const url = `http://127.0.0.1:${port}/api/cart`
      await autocannon({ url, connections: 50, duration: 1 })
      const res = await autocannon({ url, connections: 50, duration })
      results[app].push(res.requests.average)
      child.disconnect()
      await once(child, 'exit')
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
  const rows = APPS.map(app => ({ app, rps: Math.round(median(results[app])), rounds: results[app].map(Math.round) }))
  if (process.argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ node: process.version, rounds, duration, rows }, null, 2) + '\n')
  } else {
    console.log(`Hello-world ceilings (req/s, median of ${rounds} interleaved rounds of ${duration} s, 50 connections)`)
    for (const r of rows) console.log(`${r.app.padEnd(10)} ${String(r.rps).padStart(7)}   rounds ${r.rounds.join(', ')}`)
    const node = rows[0].rps
    for (const r of rows.slice(1)) console.log(`${r.app}: ${(1e6 / r.rps - 1e6 / node).toFixed(1)} µs per request more than node:http (wall time at this load)`)
  }
}
