/**
 * @fastify/http-proxy's route-level options on the Fastify plugin (issue 15):
 * passed through with the same meaning (preHandler, preValidation, onRequest,
 * config, httpMethods, constraints, routes, preRewrite), every other
 * @fastify/http-proxy option refused with AFFINITY_ERR_UNSUPPORTED_OPTION, and the
 * reply left to Fastify until the first byte of a proxied answer (onError can use
 * reply.code().send(), onSend hooks see such answers). docs/migrating.md cites these tests.
 */
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import affinity, { type AffinityFastifyOptions } from '@affinity/fastify'
import type { ProxyError } from '@affinity/core'
import { balancer, entries, upstreams } from './adapters/scenarios.js'
import { request } from './helpers/http.js'
import { pattern, sha256, type TestUpstream } from './helpers/upstreams.js'

/** A Fastify app with the plugin under /api, listening on 127.0.0.1:0, closed with the test. */
async function app (t: Test, opts: AffinityFastifyOptions, setup?: (app: FastifyInstance) => void, fastifyOpts: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, base: string, url: string }> {
  const f = Fastify(fastifyOpts)
  t.teardown(() => f.close())
  setup?.(f)
  await f.register(affinity, { prefix: '/api', ...opts })
  await f.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(f.server.address() as { port: number }).port}`
  return { app: f, base: `${url}/api`, url }
}

async function oneUpstream (t: Test): Promise<TestUpstream> {
  return (await upstreams(t, 1))[0]!
}

t.test('preHandler: an auth hook written the @fastify/http-proxy way answers 401, and the upstream never sees the request', async t => {
  const up = await oneUpstream(t)
  const auth = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (request.headers.authorization !== 'Bearer good') await reply.code(401).send({ error: 'unauthorised' })
  }
  const { base } = await app(t, { upstreams: [up.url], preHandler: auth })
  const refused = await request(`${base}/echo`)
  t.equal(refused.status, 401)
  t.same(refused.json(), { error: 'unauthorised' })
  const refusedPost = await request(`${base}/echo`, { method: 'POST', body: 'data', headers: { 'content-type': 'text/plain' } })
  t.equal(refusedPost.status, 401)
  t.equal(up.seen.length, 0, 'nothing was forwarded')
  const allowed = await request(`${base}/echo`, { headers: { authorization: 'Bearer good' } })
  t.equal(allowed.status, 200)
  t.equal(up.seen.length, 1)
})

t.test('preHandler: a list of hooks, and request.affinity is set when they run', async t => {
  const up = await oneUpstream(t)
  const ran: string[] = []
  const { base } = await app(t, {
    upstreams: [up.url],
    preHandler: [
      (request, _reply, done) => { ran.push(`first:${request.affinity?.upstream?.url}`); done() },
      async () => { ran.push('second') },
    ],
  })
  t.equal((await request(`${base}/echo`)).status, 200)
  t.same(ran, [`first:${up.url}`, 'second'])
})

t.test('preValidation: JSON and text bodies are parsed for the hook and forwarded byte for byte; other bodies stream past bodyLimit', async t => {
  const up = await oneUpstream(t)
  const seen: unknown[] = []
  const { base } = await app(t, {
    upstreams: [up.url],
    preValidation: async (request, reply) => {
      seen.push(request.body)
      const body = request.body as { hello?: string } | string | undefined
      if (typeof body === 'object' && body !== null && !Buffer.isBuffer(body) && 'hello' in body && body.hello !== 'world') await reply.code(400).send({ message: 'invalid body.hello value' })
    },
  }, undefined, { bodyLimit: 1024 * 1024 })
  const invalid = await request(`${base}/echo`, { method: 'POST', body: '{"hello":"invalid"}', headers: { 'content-type': 'application/json' } })
  t.equal(invalid.status, 400)
  t.same(invalid.json(), { message: 'invalid body.hello value' })
  t.equal(up.seen.length, 0, 'refused before forwarding')

  const sent = '{ "hello" :\n  "world",  "n": 1.50 }'
  const valid = await request(`${base}/echo`, { method: 'POST', body: sent, headers: { 'content-type': 'application/json; charset=utf-8' } })
  t.equal(valid.status, 200)
  t.equal(valid.json().sha256, sha256(Buffer.from(sent)), 'the upstream got the exact bytes sent (not a re-serialisation)')
  t.equal(valid.json().headers['content-length'], String(Buffer.byteLength(sent)))
  t.same(seen[1], { hello: 'world', n: 1.5 }, 'the hook saw the parsed JSON')

  const text = await request(`${base}/echo`, { method: 'POST', body: 'plain words', headers: { 'content-type': 'text/plain' } })
  t.equal(text.json().sha256, sha256(Buffer.from('plain words')))
  t.equal(seen[2], 'plain words', 'text as a string, as Fastify\'s own parser gives it')

  const big = pattern(0, 3 * 1024 * 1024)
  const binary = await request(`${base}/echo`, { method: 'POST', body: big, headers: { 'content-type': 'application/octet-stream' } })
  t.equal(binary.status, 200, 'a 3 MiB binary body is not held to the 1 MiB bodyLimit: it streams')
  t.equal(binary.json().sha256, sha256(big))

  const broken = await request(`${base}/echo`, { method: 'POST', body: '{"hello":', headers: { 'content-type': 'application/json' } })
  t.equal(broken.status, 400, 'invalid JSON is Fastify\'s 400, as with @fastify/http-proxy')
})

t.test('preValidation: without it, JSON bodies stream untouched (no parsing, no bodyLimit)', async t => {
  const up = await oneUpstream(t)
  const { base } = await app(t, { upstreams: [up.url] }, undefined, { bodyLimit: 16 })
  const sent = JSON.stringify({ much: 'x'.repeat(100) })
  const res = await request(`${base}/echo`, { method: 'POST', body: sent, headers: { 'content-type': 'application/json' } })
  t.equal(res.status, 200)
  t.equal(res.json().sha256, sha256(Buffer.from(sent)))
})

t.test('onRequest: route-level hooks run after the balancer\'s decision and can refuse', async t => {
  const up = await oneUpstream(t)
  const order: string[] = []
  const { base } = await app(t, {
    upstreams: [up.url],
    onRequest: [
      (request, reply, done) => {
        order.push(`onRequest sees ${request.affinity?.reason ?? 'no decision'}`)
        if (request.headers['x-deny'] !== undefined) { void reply.code(403).send({ denied: true }); return }
        done()
      },
    ],
  }, f => f.addHook('onRequest', (_request, _reply, done) => { order.push('app hook'); done() }))
  t.equal((await request(`${base}/echo`)).status, 200)
  t.same(order, ['app hook', 'onRequest sees rotation'], 'the app\'s hooks, the decision, then the route\'s hooks')
  const denied = await request(`${base}/echo`, { headers: { 'x-deny': '1' } })
  t.equal(denied.status, 403)
  t.equal(up.seen.length, 1, 'the denied request was not forwarded')
})

t.test('config: the proxied routes\' config, as @fastify/http-proxy sets it', async t => {
  const up = await oneUpstream(t)
  const configs: unknown[] = []
  const { base } = await app(t, { upstreams: [up.url], config: { foo: 'bar' }, preHandler: async request => { configs.push(request.routeOptions.config) } })
  await request(`${base}/echo`)
  t.match(configs[0], { foo: 'bar', url: '/api/*' })
})

t.test('httpMethods: only the listed methods are proxied', async t => {
  const up = await oneUpstream(t)
  const { base } = await app(t, { upstreams: [up.url], httpMethods: ['POST'] })
  t.equal((await request(`${base}/echo`, { method: 'POST', body: 'x' })).status, 200)
  t.equal((await request(`${base}/echo`)).status, 404)
  t.equal(up.seen.length, 1)
})

t.test('constraints: the proxied routes only match requests that meet them', async t => {
  const [a, b] = await upstreams(t, 2)
  const f = Fastify()
  t.teardown(() => f.close())
  await f.register(affinity, { prefix: '/api', upstreams: [a!.url], constraints: { host: 'a.example' } })
  await f.register(affinity, { prefix: '/api', upstreams: [b!.url], constraints: { host: 'b.example' } })
  await f.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(f.server.address() as { port: number }).port}/api`
  t.equal((await request(`${base}/echo`, { headers: { host: 'a.example' } })).json().name, a!.name)
  t.equal((await request(`${base}/echo`, { headers: { host: 'b.example' } })).json().name, b!.name)
  t.equal((await request(`${base}/echo`, { headers: { host: 'c.example' } })).status, 404)
})

t.test('routes: only the listed routes below the prefix are proxied', async t => {
  const up = await oneUpstream(t)
  const { base } = await app(t, { upstreams: [up.url], routes: ['/echo', '/cart/*'] })
  t.equal((await request(`${base}/echo`)).status, 200)
  t.equal((await request(`${base}/cart/add?item=x`)).status, 200)
  t.equal((await request(`${base}/other`)).status, 404)
})

t.test('preRewrite: rewrites the URL before the prefix is replaced, and the destination is still checked', async t => {
  const up = await oneUpstream(t)
  const calls: Array<[string, string]> = []
  const { base } = await app(t, {
    upstreams: [up.url],
    rewritePrefix: '/v2',
    preRewrite: (url, _params, prefix) => {
      calls.push([url, prefix])
      return url === '/api/escape' ? '/api/../../secret' : url.replace('/old/', '/new/')
    },
  })
  const res = await request(`${base}/old/thing?q=1`)
  t.equal(res.json().url, '/v2/new/thing?q=1')
  t.same(calls[0], ['/api/old/thing?q=1', '/api'])
  t.equal((await request(`${base}/escape`)).status, 400, 'a rewrite that escapes the prefix is refused')
  t.equal(up.seen.length, 1)
})

t.test('logLevel: Fastify\'s own register option is accepted', async t => {
  const up = await oneUpstream(t)
  const { base } = await app(t, { upstreams: [up.url], logLevel: 'warn' })
  t.equal((await request(`${base}/echo`)).status, 200)
})

t.test('every @fastify/http-proxy option the plugin does not take is refused with AFFINITY_ERR_UNSUPPORTED_OPTION, naming it and what to use instead', async t => {
  const up = await oneUpstream(t)
  // @fastify/http-proxy 11.6.3's options (README, index.js) that are not the plugin's own,
  // and the @fastify/reply-from options it passes on (plugin-level and replyOptions').
  const refused = [
    'upstream', 'wsUpstream', 'replyOptions', 'handler', 'beforeHandler', 'proxyPayloads', 'wsServerOptions', 'wsClientOptions', 'wsReconnect', 'wsHooks',
    'base', 'undici', 'http', 'http2', 'globalAgent', 'sessionTimeout', 'destroyAgent', 'cacheURLs', 'disableCache', 'contentTypesToEncode',
    'retryMethods', 'retriesCount', 'maxRetriesOn503', 'retryDelay', 'disableRequestLogging',
    'getUpstream', 'onResponse', 'timeout', 'queryString', 'method', 'body', 'contentType',
  ]
  for (const name of refused) {
    const f = Fastify()
    t.teardown(() => f.close())
    const err = await f.register(affinity, { upstreams: [up.url], [name]: true } as never).then(() => undefined, (e: unknown) => e as { code?: string, message?: string })
    t.equal(err?.code, 'AFFINITY_ERR_UNSUPPORTED_OPTION', `${name}: refused`)
    t.match(err?.message, new RegExp(`^@affinity/fastify does not support @fastify/http-proxy's option \`${name}\`: [^ ].{10,}`), `${name}: the message names it and what to use instead`)
  }
  const f = Fastify()
  t.teardown(() => f.close())
  await t.rejects(async () => { await f.register(affinity, { upstreams: [up.url], preHandler: 'auth' } as never) }, { code: 'AFFINITY_ERR_INVALID_OPTION', message: /`preHandler`/ })
  await t.rejects(async () => { await Fastify().register(affinity, { upstreams: [up.url], httpMethods: [] } as never) }, { code: 'AFFINITY_ERR_INVALID_OPTION', message: /`httpMethods`/ })
  await t.rejects(async () => { await Fastify().register(affinity, { upstreams: [up.url], routes: ['a'] } as never) }, { code: 'AFFINITY_ERR_INVALID_OPTION', message: /`routes`/ })
  t.equal(up.seen.length, 0)
})

t.test('onError: the reply is still Fastify\'s (onSend hooks run, reply.code().send() works); proxied answers are written after hijacking it', async t => {
  const [up] = await upstreams(t, 1)
  const b = balancer(t, { upstreams: entries([up!]), retries: 0 })
  const onSend: string[] = []
  const errors: ProxyError[] = []
  const { base } = await app(t, {
    balancer: b,
    onError: (_request, reply, err) => { errors.push(err); void reply.code(err.statusCode).header('x-from', 'onError').send({ custom: err.code }) },
  }, f => f.addHook('onSend', async (request, _reply, payload) => { onSend.push(request.url); return payload }))
  const ok = await request(`${base}/echo`)
  t.equal(ok.status, 200)
  t.same(onSend, [], 'a proxied answer bypasses onSend (the reply was hijacked before its first byte)')
  up!.server.closeAllConnections()
  await up!.close()
  const failed = await request(`${base}/echo`)
  t.equal(failed.status, 502)
  t.equal(failed.headers['x-from'], 'onError')
  t.same(failed.json(), { custom: 'AFFINITY_ERR_UPSTREAM_UNREACHABLE' })
  t.same(onSend, ['/api/echo'], 'the onError answer went through Fastify\'s onSend hooks')
  t.equal(errors.length, 1)
})

t.test('onError: reply.send(err) gives Fastify\'s own error answer with the status and code', async t => {
  const b = balancer(t, { upstreams: [(await upstreams(t, 1))[0]!.url], retries: 0, timeoutMs: 200 })
  const { base } = await app(t, { balancer: b, onError: (_request, reply, err) => { void reply.send(err) } })
  const res = await request(`${base}/hang`)
  t.equal(res.status, 504)
  t.match(res.json(), { statusCode: 504, code: 'AFFINITY_ERR_UPSTREAM_TIMEOUT', message: 'The upstream did not respond in time' })
})

t.test('a streamed answer still goes straight to the socket: a 3 MiB download arrives whole', async t => {
  const up = await oneUpstream(t)
  const { base } = await app(t, { upstreams: [up.url] })
  const res = await request(`${base}/download?bytes=${3 * 1024 * 1024}`)
  t.equal(res.status, 200)
  t.equal(createHash('sha256').update(res.body).digest('hex'), sha256(pattern(0, 3 * 1024 * 1024)))
})
