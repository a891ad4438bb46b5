/**
 * http-proxy-middleware's `pathRewrite` on the Express middleware (issue 15): a map
 * of regular expressions (the first that matches applies) or a function, sync or
 * async, applied to the path and query below the mount, for HTTP requests and
 * WebSocket upgrades alike. docs/migrating.md cites these tests.
 */
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import express from 'express'
import { affinity, type AffinityExpressOptions } from '@affinity/express'
import { upstreams } from './adapters/scenarios.js'
import { openWebSocket, request } from './helpers/http.js'

/** An Express app with the middleware under /api (and its upgrade listener), closed with the test. */
async function app (t: Test, opts: AffinityExpressOptions): Promise<string> {
  const lb = affinity(opts)
  const a = express()
  a.use('/api', lb)
  a.use((err: Error & { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) => { res.status(err.status ?? 500).json({ handled: err.message }) })
  const server: Server = a.listen(0, '127.0.0.1')
  await once(server, 'listening')
  server.on('upgrade', lb.upgrade)
  t.teardown(async () => {
    await lb.close()
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => resolve()))
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`
}

t.test('pathRewrite: a map of regular expressions; the first that matches applies, query included', async t => {
  const [up] = await upstreams(t, 1)
  const base = await app(t, { upstreams: [up!.url], pathRewrite: { '^/old/': '/new/', '^/old': '/never', '\\?debug=1$': '?debug=0' } })
  t.equal((await request(`${base}/old/thing?x=1`)).json().url, '/new/thing?x=1', 'the first matching rule only')
  t.equal((await request(`${base}/keep?debug=1`)).json().url, '/keep?debug=0', 'the query is part of the path rewritten')
  t.equal((await request(`${base}/untouched`)).json().url, '/untouched')
})

t.test('pathRewrite: a function of the path and Express\'s req; undefined keeps the path; a missing leading slash is added', async t => {
  const [up] = await upstreams(t, 1)
  const seen: string[] = []
  const base = await app(t, {
    upstreams: [up!.url],
    pathRewrite: (path, req) => {
      seen.push(`${req.baseUrl}|${path}`)
      if (path.startsWith('/keep')) return undefined
      return path.startsWith('/bare') ? 'bare-path' : `/v2${path}`
    },
  })
  t.equal((await request(`${base}/users/1?x=y`)).json().url, '/v2/users/1?x=y')
  t.equal((await request(`${base}/keep`)).json().url, '/keep')
  t.equal((await request(`${base}/bare`)).json().url, '/bare-path')
  t.same(seen, ['/api|/users/1?x=y', '/api|/keep', '/api|/bare'])
})

t.test('pathRewrite: an async function is awaited; one that throws or rejects goes to the app\'s error handler', async t => {
  const [up] = await upstreams(t, 1)
  const base = await app(t, {
    upstreams: [up!.url],
    pathRewrite: (path) => {
      if (path === '/throw') throw new Error('rewrite threw')
      if (path === '/reject') return Promise.reject(new Error('rewrite rejected'))
      return Promise.resolve(`/async${path}`)
    },
  })
  t.equal((await request(`${base}/x`)).json().url, '/async/x')
  const thrown = await request(`${base}/throw`)
  t.equal(thrown.status, 500)
  t.same(thrown.json(), { handled: 'rewrite threw' })
  t.same((await request(`${base}/reject`)).json(), { handled: 'rewrite rejected' })
  t.equal(up!.seen.length, 1, 'only the rewritten request reached the upstream')
})

t.test('pathRewrite: WebSocket upgrades are rewritten too', async t => {
  const [up] = await upstreams(t, 1)
  const base = await app(t, { upstreams: [up!.url], pathRewrite: { '^/socket': '/ws/socket' } })
  const { ws, hello } = await openWebSocket(`${base.replace('http:', 'ws:')}/socket?room=1`)
  t.equal(hello.url, '/ws/socket?room=1')
  ws.close()
})

t.test('pathRewrite: a bad option is refused at construction', async t => {
  t.throws(() => affinity({ upstreams: ['http://127.0.0.1:1'], pathRewrite: { '(': '/x' } }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /pathRewrite\['\('\]/ })
  t.throws(() => affinity({ upstreams: ['http://127.0.0.1:1'], pathRewrite: { '^/a': 1 } as never }), { code: 'AFFINITY_ERR_INVALID_OPTION' })
  t.throws(() => affinity({ upstreams: ['http://127.0.0.1:1'], pathRewrite: 'nope' as never }), { code: 'AFFINITY_ERR_INVALID_OPTION' })
})
