/**
 * The options both adapters take under one set of names (@fastify/http-proxy's,
 * issue 15): rewriteRequestHeaders, rewriteHeaders, onError, preserveHost and the
 * Location / Content-Location rewrite (internalRewriteLocationHeader). Each case
 * runs on both adapters (proxy-options.fastify.test.ts, proxy-options.express.test.ts)
 * with real upstreams on 127.0.0.1:0. docs/migrating.md cites these cases by name.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import type { HeaderFields, ProxyError } from '@affinity/core'
import type { AdapterHarness } from './harness.js'
import { balancer, entries, idOf, upstreams } from './scenarios.js'
import { openWebSocket, request } from '../helpers/http.js'
import { deadUrl } from '../helpers/upstreams.js'

export interface ProxyOptionCase {
  name: string
  run (t: Test, h: AdapterHarness): Promise<void>
}

/** Whether a hook got the framework's own request (Fastify's request, Express's req), not the raw one. */
function isFrameworkRequest (h: AdapterHarness, req: any): boolean {
  return h.name === 'fastify' ? typeof req.routeOptions === 'object' && 'affinity' in req : typeof req.baseUrl === 'string' && typeof req.get === 'function'
}

/** Answers the way the framework does: Fastify's reply.code().header().send(), Express's res.status().set().json(). */
function frameworkAnswer (h: AdapterHarness, reply: any, status: number, body: unknown): void {
  if (h.name === 'fastify') reply.code(status).header('x-custom-error', 'yes').send(body)
  else reply.status(status).set('x-custom-error', 'yes').json(body)
}

/** An upstream answering GET /to?location=…&content-location=…&status=… with those headers. */
async function redirectingUpstream (t: Test): Promise<{ url: string, seen: string[] }> {
  const seen: string[] = []
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '')
    const q = new URL(req.url ?? '/', 'http://x').searchParams
    const headers: Record<string, string> = { 'content-type': 'text/plain' }
    const location = q.get('location')
    const contentLocation = q.get('content-location')
    if (location !== null) headers.location = location.replace('{self}', `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    if (contentLocation !== null) headers['content-location'] = contentLocation.replace('{self}', `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    res.writeHead(Number(q.get('status') ?? 302), headers).end('moved')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

function locationOf (to: string, contentLocation?: string): string {
  const q = new URLSearchParams({ location: to, ...(contentLocation !== undefined ? { 'content-location': contentLocation } : {}) })
  return `/to?${q.toString()}`
}

export const PROXY_OPTION_CASES: ProxyOptionCase[] = [
  {
    name: 'rewriteRequestHeaders: the hook gets the framework request and the headers to send, and its result goes up (HTTP and WebSocket)',
    async run (t, h) {
      const [up] = await upstreams(t, 1)
      const b = balancer(t, { upstreams: entries([up!]) })
      const views: boolean[] = []
      const given: HeaderFields[] = []
      const s = await h.start(t, {
        source: { balancer: b },
        proxy: {
          rewriteRequestHeaders: (req: unknown, headers: HeaderFields) => {
            views.push(isFrameworkRequest(h, req))
            given.push({ ...headers })
            const { 'x-drop-me': _dropped, ...rest } = headers
            return { ...rest, 'X-Added': 'by-hook', 'x-count': 2, 'x-list': ['a', 'b'], connection: 'close', 'transfer-encoding': 'chunked' }
          },
        },
      })
      const res = await request(`${s.base}/echo`, { headers: { 'x-drop-me': 'secret', 'x-keep': 'kept' } })
      t.equal(res.status, 200)
      const seen = res.json().headers
      t.equal(seen['x-added'], 'by-hook', 'a header the hook added went up (its name in lower case)')
      t.equal(seen['x-count'], '2', 'numbers become strings')
      t.equal(seen['x-list'], 'a, b', 'a list is sent as repeated fields')
      t.equal(seen['x-keep'], 'kept')
      t.equal(seen['x-drop-me'], undefined, 'a header the hook left out did not')
      t.not(seen.connection, 'close', 'hop-by-hop fields the hook returns are dropped: the proxy frames the request')
      t.equal(seen.host, up!.url.slice('http://'.length), 'Host stays the upstream\'s (the hook got none to keep)')
      t.equal(given[0]!.host, undefined, 'no host in what the hook gets, without preserveHost')
      t.equal(given[0]!['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-* are in what the hook gets')
      t.same(views, [true], 'the hook got the framework\'s request, once')

      const { ws, hello } = await openWebSocket(`${s.base.replace('http:', 'ws:')}/ws`, { 'x-drop-me': 'secret' })
      t.equal(hello.headers['x-added'], 'by-hook', 'the WebSocket upgrade went up with the rewritten headers')
      t.equal(hello.headers['x-drop-me'], undefined)
      ws.close()
    },
  },
  {
    name: 'rewriteRequestHeaders: a hook that throws gets the client a 500 and charges no upstream',
    async run (t, h) {
      const [up] = await upstreams(t, 1)
      const b = balancer(t, { upstreams: entries([up!]) })
      const s = await h.start(t, { source: { balancer: b }, proxy: { rewriteRequestHeaders: () => { throw new Error('hook bug') } } })
      const res = await request(`${s.base}/echo`)
      t.equal(res.status, 500)
      t.same(res.json(), { statusCode: 500, error: 'Internal Server Error', message: 'The proxy is misconfigured' })
      t.equal(up!.seen.length, 0, 'nothing reached the upstream')
      t.equal(b.list()[0]!.failures, 0, 'the upstream is not charged')
    },
  },
  {
    name: 'rewriteHeaders: the hook gets the upstream\'s headers (Location already rewritten) and the framework request; its result goes down',
    async run (t, h) {
      const r = await redirectingUpstream(t)
      const b = balancer(t, { upstreams: [r.url] })
      const views: boolean[] = []
      const s = await h.start(t, {
        source: { balancer: b },
        proxy: {
          rewriteHeaders: (headers: HeaderFields, req: unknown) => {
            views.push(isFrameworkRequest(h, req))
            const { 'content-type': _type, ...rest } = headers
            return { ...rest, 'X-Seen-Location': String(headers.location), 'x-number': 7, 'set-cookie': ['a=1', 'b=2'] }
          },
        },
      })
      const res = await request(`${s.base}${locationOf('/login')}`)
      t.equal(res.status, 302)
      t.equal(res.headers['x-seen-location'], '/api/login', 'the hook saw the Location already rewritten under the mount')
      t.equal(res.headers.location, '/api/login')
      t.equal(res.headers['x-number'], '7')
      t.equal(res.headers['content-type'], undefined, 'a header the hook left out is not sent')
      t.same(res.headers['set-cookie'], ['a=1', 'b=2'], 'Set-Cookie lines from the hook')
      t.same(views, [true])
    },
  },
  {
    name: 'rewriteHeaders: a hook that throws gets the client a 500 (through onError, with the thrown error as cause) and charges no upstream',
    async run (t, h) {
      const [up] = await upstreams(t, 1)
      const b = balancer(t, { upstreams: entries([up!]) })
      const errors: ProxyError[] = []
      const s = await h.start(t, {
        source: { balancer: b },
        proxy: {
          rewriteHeaders: () => { throw new Error('hook bug') },
          onError: (_req: unknown, reply: unknown, err: ProxyError) => { errors.push(err); frameworkAnswer(h, reply, err.statusCode, { code: err.code }) },
        },
      })
      const res = await request(`${s.base}/echo`)
      t.equal(res.status, 500)
      t.same(res.json(), { code: 'AFFINITY_ERR_PROXY_MISCONFIGURED' })
      t.equal((errors[0]!.cause as Error).message, 'hook bug')
      const u = b.list()[0]!
      t.equal(u.failures, 0, 'the upstream is not charged')
      t.equal(u.inFlight, 0)
    },
  },
  {
    name: 'onError: a refused connection, no upstream available and a timeout reach the hook with statusCode, a stable code and cause; it answers through the framework',
    async run (t, h) {
      const dead = await deadUrl()
      const [slow] = await upstreams(t, 1)
      const b = balancer(t, { upstreams: [{ url: dead, id: 'dead' }, { url: slow!.url, id: idOf(slow!) }], retries: 0, timeoutMs: 300 })
      const errors: ProxyError[] = []
      const views: boolean[] = []
      const s = await h.start(t, {
        source: { balancer: b },
        proxy: {
          onError: (req: unknown, reply: unknown, err: ProxyError) => {
            errors.push(err)
            views.push(isFrameworkRequest(h, req))
            frameworkAnswer(h, reply, err.statusCode === 504 ? 599 : err.statusCode, { code: err.code, retryAfter: err.retryAfter ?? null })
          },
        },
      })
      b.drain(idOf(slow!))
      const refused = await request(`${s.base}/echo`)
      t.equal(refused.status, 502)
      t.equal(refused.headers['x-custom-error'], 'yes', 'the framework\'s reply answered')
      t.same(refused.json(), { code: 'AFFINITY_ERR_UPSTREAM_UNREACHABLE', retryAfter: null })
      t.match((errors[0]!.cause as { code?: string }).code, /ECONNREFUSED|UND_ERR_SOCKET/, 'the cause is undici\'s error')
      t.equal(errors[0]!.message, 'No upstream could be reached')

      b.undrain(idOf(slow!))
      b.drain('dead')
      const hang = await request(`${s.base}/hang`)
      t.equal(hang.status, 599, 'a timeout answered as the hook chose')
      t.equal(errors[1]!.code, 'AFFINITY_ERR_UPSTREAM_TIMEOUT')
      t.equal(errors[1]!.statusCode, 504)

      b.drain(idOf(slow!))
      const none = await request(`${s.base}/echo`)
      t.equal(none.status, 503)
      t.equal(errors[2]!.code, 'AFFINITY_ERR_NO_UPSTREAM_AVAILABLE')
      t.ok(typeof errors[2]!.retryAfter === 'number' && errors[2]!.retryAfter > 0, 'a 503 comes with the Retry-After seconds')
      t.same(views, [true, true, true])
    },
  },
  {
    name: 'onError: a hook that throws gets the JSON answer sent instead',
    async run (t, h) {
      const b = balancer(t, { upstreams: [await deadUrl()], retries: 0 })
      const s = await h.start(t, { source: { balancer: b }, proxy: { onError: () => { throw new Error('onError bug') } } })
      const warned = new Promise<Error>(resolve => process.once('warning', resolve))
      const res = await request(`${s.base}/echo`)
      t.equal(res.status, 502)
      t.same(res.json(), { statusCode: 502, error: 'Bad Gateway', message: 'No upstream could be reached' })
      t.match((await warned).message, /onError failed \(onError bug\)/, 'and a process warning says why')
    },
  },
  {
    name: 'preserveHost: the client\'s Host goes up (HTTP and WebSocket); without it, the upstream\'s own',
    async run (t, h) {
      const [up] = await upstreams(t, 1)
      const b = balancer(t, { upstreams: entries([up!]) })
      const kept = await h.start(t, { source: { balancer: b }, proxy: { preserveHost: true } })
      const res = await request(`${kept.base}/echo`, { headers: { host: 'front.example:8443' } })
      t.equal(res.json().headers.host, 'front.example:8443')
      const { ws, hello } = await openWebSocket(`${kept.base.replace('http:', 'ws:')}/ws`, { host: 'front.example:8443' })
      t.equal(hello.headers.host, 'front.example:8443', 'the upgrade too')
      ws.close()

      const b2 = balancer(t, { upstreams: entries([up!]) })
      const plain = await h.start(t, { source: { balancer: b2 } })
      const res2 = await request(`${plain.base}/echo`, { headers: { host: 'front.example:8443' } })
      t.equal(res2.json().headers.host, up!.url.slice('http://'.length), 'default: the upstream\'s Host (http-proxy-middleware\'s changeOrigin)')
      t.equal(res2.json().headers['x-forwarded-host'], 'front.example:8443', 'the client\'s is in X-Forwarded-Host')
    },
  },
  {
    name: 'internalRewriteLocationHeader: Location and Content-Location under the mount by default; the upstream\'s own origin becomes a path; other sites untouched; false turns it off',
    async run (t, h) {
      const r = await redirectingUpstream(t)
      const b = balancer(t, { upstreams: [r.url] })
      const s = await h.start(t, { source: { balancer: b } })
      const cases: Array<[string, string]> = [
        ['/login', '/api/login'],
        ['/', '/api/'],
        ['/a/b?x=1#f', '/api/a/b?x=1#f'],
        ['{self}/next?q=1', '/api/next?q=1'],
        ['{self}', '/api/'],
        ['https://elsewhere.example/x', 'https://elsewhere.example/x'],
        ['//elsewhere.example/x', '//elsewhere.example/x'],
        ['relative/path', 'relative/path'],
      ]
      for (const [sent, expected] of cases) {
        const res = await request(`${s.base}${locationOf(sent, sent)}`)
        t.equal(res.headers.location, expected, `Location ${sent}`)
        t.equal(res.headers['content-location'], expected, `Content-Location ${sent}`)
      }

      const b2 = balancer(t, { upstreams: [r.url] })
      const off = await h.start(t, { source: { balancer: b2 }, prefix: '/off', proxy: { internalRewriteLocationHeader: false } })
      const res = await request(`${off.base}${locationOf('/login', '{self}/x')}`)
      t.equal(res.headers.location, '/login', 'left as the upstream sent it')
      t.match(res.headers['content-location'], /^http:\/\/127\.0\.0\.1:\d+\/x$/)
    },
  },
  {
    name: 'internalRewriteLocationHeader: an upstream URL with a base path maps that path back to the mount',
    async run (t, h) {
      const r = await redirectingUpstream(t)
      const b = balancer(t, { upstreams: [`${r.url}/base`] })
      const s = await h.start(t, { source: { balancer: b } })
      const inside = await request(`${s.base}${locationOf('/base/login')}`)
      t.equal(r.seen.at(-1)!.startsWith('/base/to?'), true, 'the upstream saw its base path')
      t.equal(inside.headers.location, '/api/login', 'under the base path: mapped to the mount')
      const outside = await request(`${s.base}${locationOf('/other')}`)
      t.equal(outside.headers.location, '/other', 'outside it: left alone')
    },
  },
  {
    name: 'unsupported options of the proxy migrated from are refused with AFFINITY_ERR_UNSUPPORTED_OPTION, naming the option and what to use instead',
    async run (t, h) {
      const [up] = await upstreams(t, 1)
      const option = h.name === 'fastify' ? 'upstream' : 'target'
      await t.rejects(h.start(t, { source: { upstreams: [up!.url], [option]: up!.url } as never }), {
        code: 'AFFINITY_ERR_UNSUPPORTED_OPTION',
        message: new RegExp(`option \`${option}\`: pass \`upstreams: \\[url, …\\]\``),
      })
      await t.rejects(h.start(t, { source: { upstreams: [up!.url] }, proxy: { onError: 'nope' } as never }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /`onError`: expected a function/ })
      await t.rejects(h.start(t, { source: { upstreams: [up!.url] }, proxy: { preserveHost: 'yes' } as never }), { code: 'AFFINITY_ERR_INVALID_OPTION', message: /`preserveHost`/ })
    },
  },
]

export function runProxyOptionCases (t: Test, h: AdapterHarness): void {
  for (const c of PROXY_OPTION_CASES) t.test(`${h.name}: ${c.name}`, async t => c.run(t, h))
}
