// The upstreams: three tiny keep-alive node:http servers answering a small JSON body, run
// in one child process (`--role upstreams`), which also counts the requests each one got
// and stops nginx if the parent dies.
import { once } from 'node:events'
import http from 'node:http'

export const HOST = '127.0.0.1' // every server of the benchmark listens here
export const PATH = '/api/cart' // what the users request
export const UPSTREAM_NAMES = ['s1', 's2', 's3']

/** What upstream i answers (express-hello answers upstream 0's). */
export const upstreamBody = (i) => Buffer.from(JSON.stringify({ ok: true, server: UPSTREAM_NAMES[i], cart: { items: 3, total: 42.5, currency: 'EUR' } }))

/** The upstreams child: serves, then answers the parent's stats / watch / unwatch messages. */
export async function runUpstreams () {
  const counts = UPSTREAM_NAMES.map(() => 0)
  const origins = []
  for (let i = 0; i < UPSTREAM_NAMES.length; i++) {
    const body = upstreamBody(i)
    const server = http.createServer({ keepAliveTimeout: 120_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
      counts[i]++
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length })
      res.end(body)
      if (req.readableEnded === false) req.resume()
    })
    server.maxRequestsPerSocket = 0
    server.listen(0, HOST)
    await once(server, 'listening')
    origins.push(`http://${HOST}:${server.address().port}`)
  }
  // Watchdog: processes the parent started that are not Node (nginx) die with the parent,
  // even when the parent itself is killed with SIGKILL.
  const watched = new Set()
  process.on('disconnect', () => {
    for (const pid of watched) { try { process.kill(pid, 'SIGTERM') } catch {} }
    process.exit(0)
  })
  process.on('message', (m) => {
    if (m.type === 'watch') for (const pid of m.pids) watched.add(pid)
    if (m.type === 'unwatch') for (const pid of m.pids) watched.delete(pid)
    if (m.type === 'stats') {
      process.send({ type: 'stats', counts: [...counts] })
      if (m.reset) counts.fill(0)
    }
  })
  process.send({ type: 'ready', origins })
}
