// The doors on plain node:http (no framework), each in a proxy child of its own:
//   floor        node:http + undici Pool per upstream, round robin, the client's headers copied,
//                bodies piped, nothing else: no balancing state, no header hygiene, no
//                X-Forwarded-*, no failover, no timeouts (issue 18: the least a Node proxy can
//                cost, the figure every Node door is compared with)
//   core-<s>     the Affinity core on plain node:http, as the README's "Using the core directly":
//                createBalancer + balancer.choose + balancer.forward in http.createServer
//   express-hello  Express 5 answering the upstream's body itself (no proxying): Express's own
//                cost per request, for "Express hello-world + floor"
//   node-hello   the same answer from plain node:http: the server side every door pays (accept,
//                parse, respond), which "Express hello world + floor" counts twice
import { once } from 'node:events'
import http from 'node:http'
import { affinityImport } from './packages.js'
import { HOST, upstreamBody } from './upstreams.js'

/** The server every door listens with: keep-alive connections kept open as the upstreams' are. */
function serverOptions () {
  return { keepAliveTimeout: 120_000, requestTimeout: 0, headersTimeout: 60_000 }
}

async function listen (server) {
  server.maxRequestsPerSocket = 0
  server.listen(0, HOST)
  await once(server, 'listening')
  return {
    port: server.address().port,
    close: () => { server.closeAllConnections(); return new Promise(resolve => server.close(resolve)) },
  }
}

/**
 * The floor: undici's dispatch API (its cheapest, and the one the core forwards with: 0.95×
 * the CPU per request of a `pool.stream` floor in one interleaved 10-round run of both through
 * bench/proxy.js, on a busy shared machine; re-measure on a quiet one), the
 * request headers as Node received them (rawHeaders, the flat [name, value, …] form undici
 * takes), the request body piped when there is one, the response written as it comes with
 * backpressure.
 */
export async function listenFloor (origins) {
  const { Pool } = await import('undici')
  const pools = origins.map(o => new Pool(o, { pipelining: 1 }))
  let next = 0
  const server = http.createServer(serverOptions(), (req, res) => {
    const pool = pools[next]
    next = next === pools.length - 1 ? 0 : next + 1
    const bodyless = req.method === 'GET' || req.method === 'HEAD'
    pool.dispatch({ method: req.method, path: req.url, headers: req.rawHeaders, body: bodyless ? null : req }, new Relay(res))
  })
  const { port, close } = await listen(server)
  return { port, close: async () => { await close(); await Promise.all(pools.map(p => p.close())) } }
}

/** The floor's undici handler: the upstream's status, headers and body, straight to the client. */
class Relay {
  constructor (res) { this.res = res }
  onRequestStart () {}
  onResponseStart (_controller, statusCode, headers) { this.res.writeHead(statusCode, headers) }
  onResponseData (controller, chunk) {
    if (!this.res.write(chunk)) { controller.pause(); this.res.once('drain', () => controller.resume()) }
  }
  onResponseEnd () { this.res.end() }
  onResponseError (_controller, err) {
    if (this.res.headersSent) this.res.destroy(err)
    else { this.res.statusCode = 502; this.res.end() }
  }
}

/** The core on node:http, as the README shows it (cookies parsed with the `cookie` package). */
export async function listenCore (origins, strategy) {
  const { createBalancer } = await affinityImport('core')
  const { parse: parseCookies } = await import('cookie')
  const balancer = createBalancer({ upstreams: origins, strategy })
  const forward = (choice, req, res) => balancer.forward(choice, req, res, { path: req.url })
  const server = http.createServer(serverOptions(), (req, res) => {
    const choice = balancer.choose({
      method: req.method, url: req.url, headers: req.headers,
      ip: req.socket.remoteAddress, cookies: parseCookies(req.headers.cookie ?? ''), protocol: 'http',
    })
    // Synchronous for every built-in strategy; a promise only with an asynchronous StickStore.
    if (choice instanceof Promise) choice.then(c => forward(c, req, res), () => { res.statusCode = 500; res.end() })
    else forward(choice, req, res)
  })
  const { port, close } = await listen(server)
  return { port, close: async () => { await close(); await balancer.close() } }
}

/** node:http hello world: upstream s1's answer, from here. */
export async function listenNodeHello () {
  const body = upstreamBody(0)
  return listen(http.createServer(serverOptions(), (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length })
    res.end(body)
  }))
}

/** Express 5 hello world: one middleware answering the upstream s1's body (`affinityServer`: on createServer(app)). */
export async function listenExpressHello (affinityServer) {
  const { default: express } = await import('express')
  const app = express()
  app.set('trust proxy', true)
  const body = upstreamBody(0)
  app.use((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length })
    res.end(body)
  })
  if (!affinityServer) return listen(http.createServer(serverOptions(), app))
  const { createServer } = await import('@affinity/express')
  return listen(createServer(app, serverOptions()))
}
