import { createHash } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import express, { type ErrorRequestHandler } from 'express'
import express4 from 'express4'
import { ipHash, stickyCookie, type AffinityLogger } from '@affinity/core'
import { affinity, type AffinityMiddleware } from '@affinity/express'
import { expressHarness } from './adapters/harness.js'
import {
  Browser, MB, SECRET_A, balancer, balancerCookies, checkAuthGate, download, entries, runScenarios, upstreams, whoServes, wsUrl,
} from './adapters/scenarios.js'
import { openWebSocket, request, until } from './helpers/http.js'
import { Scrape, expectedFromStats } from './helpers/prometheus.js'
import { patternSha } from './helpers/upstreams.js'

runScenarios(t, expressHarness())
// Express 4 ("4 also works"): the same table through the `express4` alias.
runScenarios(t, expressHarness(express4, 'express4'))

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex')

t.test('express 4: sticky cookie, WebSocket on the pinned upstream, 8 MB download intact', async t => {
  const ups = await upstreams(t, 3)
  const h = expressHarness(express4, 'express4')
  const app = await h.start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) } })
  const user = new Browser()
  const pinned = await user.visit(app.base)
  t.equal(balancerCookies(user.last!).length, 1, 'one cookie on the first visit')
  await new Browser().visit(app.base)
  for (let i = 0; i < 6; i++) {
    t.equal(await user.visit(app.base), pinned, 'sticks')
    t.equal(balancerCookies(user.last!).length, 0)
  }
  const { ws, hello } = await openWebSocket(`${wsUrl(app.base)}/chat`, { cookie: user.jar.header()! })
  t.equal(hello.name, pinned, 'WebSocket on the pinned upstream')
  t.equal(hello.url, '/chat')
  ws.close()
  const size = 8 * MB
  const down = await download(`${app.base}/download?bytes=${size}`)
  t.equal(down.status, 200)
  t.equal(down.bytes, size)
  t.equal(down.sha256, patternSha(size), '8 MB download byte-identical')
})

t.test('express: body parsers mounted before the middleware', async t => {
  const ups = await upstreams(t, 1)
  const errors: Array<{ code?: string, url: string }> = []
  const onError: ErrorRequestHandler = (err, req, res, _next) => {
    errors.push({ code: (err as { code?: string }).code, url: req.originalUrl })
    res.status(422).json({ handledBy: 'app', code: (err as { code?: string }).code })
  }
  const app = await expressHarness().start(t, {
    source: { balancer: balancer(t, { upstreams: entries(ups) }) },
    extraApp: (a) => {
      a.use(express.json())
      a.use(express.text())
      a.use(express.urlencoded({ extended: true }))
    },
    afterMount: (a) => { a.use(onError) },
  })
  const post = (body: string, type: string): ReturnType<typeof request> =>
    request(`${app.base}/upload`, { method: 'POST', body, headers: { 'content-type': type } })

  const sent = '{ "cart": [ 1, 2, { "sku": "é" } ],\n  "user": "alex" }'
  const json = await post(sent, 'application/json')
  t.equal(json.status, 200)
  const expected = JSON.stringify(JSON.parse(sent))
  t.equal(json.json().sha256, sha(expected), 'the upstream got the parsed JSON re-encoded: equal JSON')
  t.equal(json.json().bytes, Buffer.byteLength(expected))
  t.equal(json.json().headers['content-length'], String(Buffer.byteLength(expected)), 'with a matching Content-Length')
  t.same(JSON.parse(expected), JSON.parse(sent))

  const text = await post('héllo wörld ✓', 'text/plain; charset=utf-8')
  t.equal(text.status, 200)
  t.equal(text.json().sha256, sha('héllo wörld ✓'), 'express.text() body delivered as the string')

  const flat = await post('a=1&b=two&b=three', 'application/x-www-form-urlencoded')
  t.equal(flat.status, 200)
  t.equal(flat.json().sha256, sha('a=1&b=two&b=three'), 'flat urlencoded fields re-encoded')
  t.same(errors, [], 'no error so far')

  const nested = await post('a[b]=1', 'application/x-www-form-urlencoded')
  t.equal(nested.status, 422, "the app's error handler answered")
  t.same(nested.json(), { handledBy: 'app', code: 'AFFINITY_ERR_BODY_CONSUMED' })
  t.same(errors, [{ code: 'AFFINITY_ERR_BODY_CONSUMED', url: '/api/upload' }], 'next(err) with the stable code')
  t.equal(ups[0]!.seen.filter(s => s.method === 'POST').length, 3, 'the unforwardable body never reached the upstream')

  const get = await request(`${app.base}/echo`)
  t.equal(get.status, 200, 'normal proxied requests are unaffected')
  t.equal(get.json().name, 'S1')
  t.equal(errors.length, 1, 'and never reach the error handler')
})

t.test("express: WebSocket upgrades follow the app's trust proxy setting", async t => {
  const ups = await upstreams(t, 3)
  const clients = Array.from({ length: 8 }, (_, i) => `203.0.113.${i * 29 + 7}`)

  const on = await expressHarness().start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: ipHash() }) }, trustProxy: true })
  const viaHttp: string[] = []
  for (const ip of clients) viaHttp.push(await whoServes(on.base, { 'x-forwarded-for': ip }))
  t.ok(new Set(viaHttp).size >= 2, `clients spread over upstreams (${viaHttp.join(',')})`)
  for (const [i, ip] of clients.entries()) {
    const { ws, hello } = await openWebSocket(`${wsUrl(on.base)}/chat`, { 'x-forwarded-for': ip })
    t.equal(hello.name, viaHttp[i], `trust proxy on: the WebSocket from ${ip} lands where its HTTP requests do`)
    t.equal(hello.headers['x-forwarded-for'], `${ip}, 127.0.0.1`)
    ws.close()
  }

  const off = await expressHarness().start(t, { source: { balancer: balancer(t, { upstreams: entries(ups), strategy: ipHash() }) }, trustProxy: false })
  const own = await whoServes(off.base)
  const landed: string[] = []
  for (const ip of clients) {
    const { ws, hello } = await openWebSocket(`${wsUrl(off.base)}/chat`, { 'x-forwarded-for': ip })
    landed.push(hello.name)
    ws.close()
  }
  t.same(landed, clients.map(() => own), 'trust proxy off: X-Forwarded-For is ignored for upgrades too')
})

t.test('express: an auth middleware before the proxy refuses HTTP requests and WebSocket upgrades alike', async t => {
  const ups = await upstreams(t, 2)
  const app = await expressHarness().start(t, {
    source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) },
    extraApp: (a) => {
      a.use((req, res, next) => {
        if (req.headers.authorization === 'Bearer ok') next()
        else res.status(401).json({ error: 'unauthorized' })
      })
    },
  })
  await checkAuthGate(t, app, ups)
})

/** `app.use('/api', lb)` on 127.0.0.1:0 (routes of `before` first); app and middleware torn down with the test. */
async function serve (t: Test, lb: AffinityMiddleware, before?: (app: express.Express) => void): Promise<string> {
  const app = express()
  before?.(app)
  app.use('/api', lb)
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    await lb.close()
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => resolve()))
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`
}

interface Logged { level: 'debug' | 'info' | 'warn', msg: string, obj: Record<string, unknown> }

/** A pino-like logger that keeps what it is given. */
function fakeLogger (debug = true): AffinityLogger & { lines: Logged[] } {
  const lines: Logged[] = []
  const at = (level: Logged['level']) => (obj: object, msg: string): void => { lines.push({ level, msg, obj: obj as Record<string, unknown> }) }
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), isLevelEnabled: (level) => debug || level !== 'debug' }
}

t.test('express: the logger option logs state changes (down and panic at warn, the rest at info) and each decision at debug', async t => {
  const ups = await upstreams(t, 3)
  const logger = fakeLogger()
  const b = balancer(t, {
    upstreams: entries(ups),
    strategy: stickyCookie({ secret: SECRET_A }),
    health: { path: '/health', intervalMs: 20, timeoutMs: 1000, fall: 1, rise: 1 },
    panicThreshold: 50,
  })
  const lb = affinity({ balancer: b, logger })
  const base = await serve(t, lb)
  const user = new Browser()
  const name = await user.visit(base)
  await user.visit(base)
  const id = `backend-${name}-id`
  t.same(logger.lines.filter(l => l.msg === 'affinity: upstream chosen'), [
    { level: 'debug', msg: 'affinity: upstream chosen', obj: { upstream: id, reason: 'assigned', cookie: true, method: 'GET', url: '/api/echo' } },
    { level: 'debug', msg: 'affinity: upstream chosen', obj: { upstream: id, reason: 'sticky', cookie: false, method: 'GET', url: '/api/echo' } },
  ], 'one debug line per decision')
  t.same(logger.lines.filter(l => l.level !== 'debug' && l.msg !== 'affinity: upstream down' && l.msg !== 'affinity: upstream up'), [], 'nothing per request at info')

  logger.lines.length = 0
  const [, s2, s3] = ups as [unknown, { healthStatus: number }, { healthStatus: number }]
  s2.healthStatus = 500
  s3.healthStatus = 500
  await until(() => logger.lines.some(l => l.msg.startsWith('affinity: panic')), 3000, 'panic logged')
  s2.healthStatus = 200
  s3.healthStatus = 200
  await until(() => logger.lines.some(l => l.msg === 'affinity: panic mode over'), 3000, 'calm logged')
  const upLogged = (id: string): boolean => logger.lines.some(l => l.msg === 'affinity: upstream up' && l.obj.upstream === id)
  await until(() => upLogged('backend-S2-id') && upLogged('backend-S3-id'), 3000, 'both up logged')
  const extra = b.add({ url: ups[0]!.url, id: 'extra' })
  await b.drain(extra.id)
  b.remove(extra.id)
  // Exact sets would be fragile (a loaded machine may time out a check of S1): each kind of line has its level and its upstream.
  const levels = (msg: string): string[] => [...new Set(logger.lines.filter(l => l.msg === msg).map(l => l.level))]
  const upstreamsOf = (msg: string): string[] => [...new Set(logger.lines.filter(l => l.msg === msg).map(l => String(l.obj.upstream)))]
  t.same(levels('affinity: upstream down'), ['warn'], 'down at warn')
  t.ok(['backend-S2-id', 'backend-S3-id'].every(id => upstreamsOf('affinity: upstream down').includes(id)), 'with the upstream id')
  t.match(logger.lines.find(l => l.msg === 'affinity: upstream down')!.obj, { reason: /health check/ })
  t.same(levels('affinity: panic mode, health ignored'), ['warn'], 'panic at warn')
  t.match(logger.lines.find(l => l.msg === 'affinity: panic mode, health ignored')!.obj, { total: 3, threshold: 50 })
  t.same(levels('affinity: panic mode over'), ['info'], 'calm at info')
  t.same(levels('affinity: upstream up'), ['info'], 'up at info')
  t.ok(['backend-S2-id', 'backend-S3-id'].every(id => upstreamsOf('affinity: upstream up').includes(id)))
  t.same(logger.lines.filter(l => l.obj.upstream === 'extra').map(l => `${l.level} ${l.msg}`), [
    'info affinity: upstream added', 'info affinity: upstream drained', 'info affinity: upstream removed',
  ], 'added, drained, removed at info')
  t.notOk(logger.lines.some(l => l.level === 'debug'), 'no request, no debug line')

  // A logger with debug off gets no per-request line; lb.close() stops the state-change lines.
  const quiet = fakeLogger(false)
  const quietBase = await serve(t, affinity({ balancer: balancer(t, { upstreams: entries(ups) }), logger: quiet }))
  for (let i = 0; i < 3; i++) t.equal((await request(`${quietBase}/echo`)).status, 200)
  t.same(quiet.lines, [], 'debug off: nothing logged per request')
  await lb.close()
  t.equal(b.listenerCount('down') + b.listenerCount('panic'), 0, 'no listener left on the caller-owned balancer after lb.close()')
})

t.test('express: lb.metrics() without the option starts metrics on first use; metrics: false refuses it', async t => {
  const ups = await upstreams(t, 2)
  const b = balancer(t, { name: 'web', upstreams: entries(ups) })
  const lb = affinity({ balancer: b })
  const base = await serve(t, lb, (app) => {
    app.get('/api/metrics', lb.metrics())
    app.get('/admin/metrics', lb.metrics())
  })
  for (let i = 0; i < 4; i++) t.equal((await request(`${base}/echo`)).status, 200)
  const res = await request(`${base}/metrics`)
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const scrape = new Scrape(res.body.toString('utf8'))
  t.same(scrape.of('web'), expectedFromStats(b.stats(), 'web'))
  const admin = new Scrape((await request(`${base.replace(/\/api$/, '')}/admin/metrics`)).body.toString('utf8'))
  t.same(admin.of('web'), scrape.of('web'), 'two handlers, one set of metrics')
  t.throws(() => affinity({ balancer: b, metrics: false }).metrics(), { code: 'AFFINITY_ERR_INVALID_OPTION' })
})

t.test("express: headers and cookies set by earlier middleware go out with the upstream's and the balancer's", async t => {
  const ups = await upstreams(t, 1)
  const app = await expressHarness().start(t, {
    source: { balancer: balancer(t, { upstreams: entries(ups), strategy: stickyCookie({ secret: SECRET_A }) }) },
    extraApp: (a) => {
      a.use((_req, res, next) => {
        res.setHeader('Access-Control-Allow-Origin', 'https://shop.example')
        res.cookie('seen', '1')
        next()
      })
    },
  })
  const res = await request(`${app.base}/echo?set-cookie=${encodeURIComponent('up=42; Path=/')}`)
  t.equal(res.status, 200)
  t.equal(res.headers['access-control-allow-origin'], 'https://shop.example', "the app's header")
  t.equal(res.headers['x-powered-by'], 'Express', "Express's own")
  const cookies = (res.headers['set-cookie'] ?? []).map(c => c.split('=')[0])
  t.same(cookies, ['up', 'seen', 'affinity'], "the upstream's cookie, the app's, then the balancer's")
})
