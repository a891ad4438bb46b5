// The upstreams of bench/membership.js: a few tiny keep-alive node:http servers, one
// per loopback address (127.0.0.2, 127.0.0.3, …) on one port, as a headless service's
// pods look, in a child process of their own (`--role upstreams`). Many balancer
// upstreams share each server: each has its own id and URL path (/u<gen>-<i>), and
// so its own undici pool and connections, as separate servers would.
import { once } from 'node:events'
import http from 'node:http'

const BODY = Buffer.from(JSON.stringify({ ok: true, cart: { items: 3, total: 42.5, currency: 'EUR' } }))

async function listen (host, port) {
  const server = http.createServer({ keepAliveTimeout: 120_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': BODY.length })
    res.end(BODY)
    if (req.readableEnded === false) req.resume()
  })
  server.maxRequestsPerSocket = 0
  server.listen(port, host)
  await once(server, 'listening')
  return server.address().port
}

/** The child: `count` servers on 127.0.0.2… (one port for all when it is free everywhere). */
export async function runUpstreams (count) {
  const hosts = Array.from({ length: count }, (_, i) => `127.0.0.${2 + i}`)
  const port = await listen(hosts[0], 0)
  const origins = [`http://${hosts[0]}:${port}`]
  for (const host of hosts.slice(1)) {
    let p
    try { p = await listen(host, port) } catch { p = await listen(host, 0) }
    origins.push(`http://${host}:${p}`)
  }
  process.on('disconnect', () => process.exit(0))
  process.send({ type: 'ready', origins })
}
