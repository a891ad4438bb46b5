import { createHash } from 'node:crypto'
import t from 'tap'
import express, { type ErrorRequestHandler } from 'express'
import express4 from 'express4'
import { ipHash, stickyCookie } from '@affinity/core'
import { expressHarness } from './adapters/harness.js'
import {
  Browser, MB, SECRET_A, balancer, balancerCookies, download, entries, runScenarios, upstreams, whoServes, wsUrl,
} from './adapters/scenarios.js'
import { openWebSocket, request } from './helpers/http.js'
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
  const denied = await request(`${app.base}/echo`)
  t.equal(denied.status, 401)
  t.same(denied.json(), { error: 'unauthorized' })
  const err = await openWebSocket(`${wsUrl(app.base)}/chat`).then(() => undefined, (e: { statusCode?: number }) => e)
  t.equal(err?.statusCode, 401, 'the upgrade is refused with 401')
  t.same(ups.map(u => u.seen.length), [0, 0], 'nothing reached an upstream')
  t.equal((await request(`${app.base}/echo`, { headers: { authorization: 'Bearer ok' } })).status, 200)
  const { ws, hello } = await openWebSocket(`${wsUrl(app.base)}/chat`, { authorization: 'Bearer ok' })
  t.equal(hello.headers.authorization, 'Bearer ok', 'an authorised upgrade goes through')
  ws.close()
})
