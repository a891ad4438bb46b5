import { Writable } from 'node:stream'
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import affinity from '@affinity/fastify'
import { stickyCookie, roundRobin } from '@affinity/core'
import { fastifyHarness } from './adapters/harness.js'
import {
  Browser, SECRET_A, assertJsonError, balancer, balancerCookies, byName, checkAuthGate, entries, idOf, runScenarios, upstreams, wsUrl,
} from './adapters/scenarios.js'
import { delay, openWebSocket, request, until } from './helpers/http.js'
import { Scrape } from './helpers/prometheus.js'
import { deadUrl } from './helpers/upstreams.js'

runScenarios(t, fastifyHarness())

interface LogLine { level: number, msg: string, upstream?: string, reason?: string, cookie?: boolean, reqId?: string }

/** A pino destination that keeps every line, parsed. */
function logSink (): { lines: LogLine[], stream: Writable } {
  const lines: LogLine[] = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as LogLine)
      cb()
    },
  })
  return { lines, stream }
}

const affinityLines = (lines: LogLine[]): LogLine[] => lines.filter(l => typeof l.msg === 'string' && l.msg.startsWith('affinity'))

t.test('fastify: rewritePrefix is prepended to the path below the prefix (HTTP and WebSocket)', async t => {
  const ups = await upstreams(t, 1)
  const h = fastifyHarness()
  const app = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups) }) }, prefix: '/api', rewritePrefix: '/v2' })
  const res = await request(`${app.base}/users/7?x=1`)
  t.equal(res.status, 200)
  t.equal(res.json().url, '/v2/users/7?x=1', 'upstream sees /v2/…')
  const { ws, hello } = await openWebSocket(`${wsUrl(app.base)}/chat?room=2`)
  t.equal(hello.url, '/v2/chat?room=2', 'WebSocket path rewritten too')
  ws.close()
})

t.test('fastify: one debug line per decision; nothing per request at info', async t => {
  const ups = await upstreams(t, 3)
  const debug = logSink()
  const app = await fastifyHarness({ logger: { level: 'debug', stream: debug.stream } })
    .start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) } })
  const user = new Browser()
  const first = await user.visit(app.base)
  const second = await user.visit(app.base)
  t.equal(second, first)
  const chosen = debug.lines.filter(l => l.msg === 'affinity: upstream chosen')
  t.equal(chosen.length, 2, 'one line per request')
  t.equal(chosen[0]!.level, 20, 'at debug')
  t.match(chosen[0], { upstream: idOf(byName(ups, first)), reason: 'assigned', cookie: true })
  t.match(chosen[1], { upstream: idOf(byName(ups, first)), reason: 'sticky', cookie: false })
  t.type(chosen[0]!.reqId, 'string', 'with the request id (request logger)')

  const info = logSink()
  const quiet = await fastifyHarness({ logger: { level: 'info', stream: info.stream } })
    .start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) } })
  for (let i = 0; i < 5; i++) t.equal((await request(`${quiet.base}/echo`)).status, 200)
  t.ok(info.lines.length > 0, 'the logger is live at info')
  t.same(affinityLines(info.lines), [], 'no per-request line from Affinity at info')
})

t.test('fastify: upstream state changes are logged (down at warn, up at info)', async t => {
  const ups = await upstreams(t, 2)
  const sink = logSink()
  const b = balancer(t, { upstreams: entries(ups), health: { path: '/health', intervalMs: 20, timeoutMs: 300, fall: 1, rise: 1 } })
  const app = await fastifyHarness({ logger: { level: 'info', stream: sink.stream } }).start(t, { source: { balancer: b } })
  byName(ups, 'S2').healthStatus = 500
  await until(() => sink.lines.some(l => l.msg === 'affinity: upstream down'), 3000, 'down logged')
  const down = sink.lines.find(l => l.msg === 'affinity: upstream down')!
  t.equal(down.level, 40, 'at warn')
  t.equal(down.upstream, idOf(byName(ups, 'S2')))
  t.match(down.reason, /health check answered 500/)
  byName(ups, 'S2').healthStatus = 200
  await until(() => sink.lines.some(l => l.msg === 'affinity: upstream up'), 3000, 'up logged')
  const up = sink.lines.find(l => l.msg === 'affinity: upstream up')!
  t.equal(up.level, 30, 'at info')
  t.equal(up.upstream, idOf(byName(ups, 'S2')))

  // A caller-owned balancer outlives the app: its listeners go with the app.
  t.ok(b.listenerCount('down') > 0)
  await app.close()
  t.equal(b.listenerCount('down'), 0, 'no listener left on the caller-owned balancer after app.close()')
})

t.test("fastify: request.affinity is readable in the app's own preHandler and onResponse hooks", async t => {
  const ups = await upstreams(t, 3)
  const seen: Array<{ hook: string, url: string, upstream?: string, reason?: string, cookie: boolean }> = []
  const app = await fastifyHarness().start(t, {
    source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) },
    extraApp: (f) => {
      const record = (hook: string, request: FastifyRequest): void => {
        const c = request.affinity
        seen.push({ hook, url: request.url, upstream: c?.upstream?.id, reason: c?.reason, cookie: c?.setCookie !== undefined })
      }
      f.addHook('preHandler', (request, _reply, done) => { record('preHandler', request); done() })
      f.addHook('onResponse', (request, _reply, done) => { record('onResponse', request); done() })
    },
  })
  const user = new Browser()
  const name = await user.visit(app.base)
  await user.visit(app.base)
  await until(() => seen.filter(s => s.hook === 'onResponse').length === 2, 2000, 'onResponse hooks')
  const id = idOf(byName(ups, name))
  t.same(seen.filter(s => s.hook === 'preHandler'), [
    { hook: 'preHandler', url: '/api/echo', upstream: id, reason: 'assigned', cookie: true },
    { hook: 'preHandler', url: '/api/echo', upstream: id, reason: 'sticky', cookie: false },
  ])
  t.same(seen.filter(s => s.hook === 'onResponse').map(s => [s.upstream, s.reason]), [[id, 'assigned'], [id, 'sticky']])
})

t.test('fastify: a balancer built from the shorthand is closed with the app; a passed one is not', async t => {
  const ups = await upstreams(t, 2)
  const health = { path: '/health', intervalMs: 20, timeoutMs: 300 }
  const checks = (): number => ups.reduce((n, u) => n + u.seen.filter(s => s.url === '/health').length, 0)
  const connections = (): Promise<number> => Promise.all(ups.map(u => new Promise<number>((resolve, reject) => u.server.getConnections((e, c) => (e ? reject(e) : resolve(c))))))
    .then(cs => cs.reduce((a, b) => a + b, 0))

  const owned = await fastifyHarness().start(t, { source: { upstreams: entries(ups), strategy: roundRobin(), health } })
  for (let i = 0; i < 4; i++) t.equal((await request(`${owned.base}/echo`)).status, 200)
  await until(() => checks() >= 6, 3000, 'health checks running')
  await owned.close()
  await delay(60) // a check already in flight at close may still land
  const after = checks()
  await delay(200)
  t.equal(checks(), after, 'health checks stopped with the app')
  let open = await connections()
  for (let i = 0; i < 100 && open !== 0; i++) { await delay(20); open = await connections() }
  t.equal(open, 0, 'upstream pools closed with the app: no connection left open')

  const b = balancer(t, { upstreams: entries(ups), health })
  const passed = await fastifyHarness().start(t, { source: { balancer: b } })
  t.equal((await request(`${passed.base}/echo`)).status, 200)
  await passed.close()
  const before = checks()
  await until(() => checks() >= before + 4, 3000, 'a caller-owned balancer keeps checking after app.close()')
  t.equal(b.list().length, 2, 'and is still usable')
})

t.test('fastify: headers set by an app-level onRequest hook (CORS) are on proxied answers and errors', async t => {
  const ups = await upstreams(t, 1)
  const cors = (f: FastifyInstance): void => {
    f.addHook('onRequest', (_request, reply, done) => {
      reply.header('access-control-allow-origin', 'https://shop.example')
      reply.header('vary', 'Origin')
      done()
    })
  }
  const app = await fastifyHarness().start(t, { source: { balancer: balancer(t, { upstreams: entries(ups) }) }, extraApp: cors })
  const res = await request(`${app.base}/echo`, { headers: { origin: 'https://shop.example' } })
  t.equal(res.status, 200)
  t.equal(res.json().name, 'S1', 'proxied')
  t.equal(res.headers['access-control-allow-origin'], 'https://shop.example', 'CORS header on the proxied response')
  t.equal(res.headers.vary, 'Origin')

  const down = await fastifyHarness().start(t, { source: { upstreams: [await deadUrl()], retries: 0 }, extraApp: cors })
  const err = await request(`${down.base}/echo`)
  assertJsonError(t, err, 502, 'Bad Gateway')
  t.equal(err.headers['access-control-allow-origin'], 'https://shop.example', 'and on the balancer error')
})

t.test('fastify: an onRequest auth hook refuses HTTP requests and WebSocket upgrades alike', async t => {
  const ups = await upstreams(t, 2)
  const app = await fastifyHarness().start(t, {
    source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) },
    extraApp: (f) => {
      f.addHook('onRequest', async (request, reply) => {
        if (request.headers.authorization !== 'Bearer ok') await reply.code(401).send({ error: 'unauthorized' })
      })
    },
  })
  await checkAuthGate(t, app, ups)
  t.equal(balancerCookies(await request(`${app.base}/echo`, { headers: { authorization: 'Bearer ok' } })).length, 1)
})

t.test('fastify: metrics.route below the prefix; a scrape is no decision; metrics: true serves <prefix>/metrics', async t => {
  const ups = await upstreams(t, 2)
  const sink = logSink()
  const app = Fastify({ logger: { level: 'debug', stream: sink.stream } })
  t.teardown(() => app.close())
  const b = balancer(t, { name: 'api', upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) })
  await app.register(affinity, { prefix: '/api', balancer: b, metrics: { route: '/_lb/metrics' } })
  await app.register(affinity, { prefix: '/x', balancer: balancer(t, { name: 'x', upstreams: entries(ups) }), metrics: true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const res = await request(`${url}/api/_lb/metrics`)
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  t.same(balancerCookies(res), [], 'no balancer cookie on a scrape')
  const scrape = new Scrape(res.body.toString('utf8'))
  t.equal(scrape.sum('affinity_picks_total', { balancer: 'api' }), 0, 'a scrape is not a pick')
  t.same(sink.lines.filter(l => l.msg === 'affinity: upstream chosen'), [], 'nor a logged decision')
  t.same(ups.map(u => u.seen.length), [0, 0], 'nor a request upstream')
  t.equal((await request(`${url}/api/_lb/metrics`, { method: 'HEAD' })).status, 200, 'HEAD too')

  const proxied = await request(`${url}/api/metrics`)
  t.equal(proxied.json().url, '/metrics', "with another route, the upstreams' own /metrics stays reachable through the proxy")
  const x = await request(`${url}/x/metrics`)
  t.equal(x.status, 200, 'metrics: true serves <prefix>/metrics')
  t.ok(new Scrape(x.body.toString('utf8')).get('affinity_panic', { balancer: 'x' }) === 0, "with the registration's own balancer, in a registry of its own")
  t.equal(new Scrape(x.body.toString('utf8')).series('affinity_panic', { balancer: 'api' }).length, 0)

  const bad = Fastify()
  t.teardown(() => bad.close())
  bad.register(affinity, { upstreams: entries(ups), metrics: { route: 'metrics' } })
  await t.rejects(async () => { await bad.ready() }, { code: 'AFFINITY_ERR_INVALID_OPTION', message: /metrics\.route/ }, 'a route that is no path is refused at start-up')
})
