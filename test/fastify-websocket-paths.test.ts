/**
 * The WebSocket path cases of @fastify/http-proxy 11.6.3's test/ws-prefix-rewrite.js
 * (prefix, rewritePrefix, a wrapping plugin's prefix, a parametric Unicode prefix, a
 * percent-encoded backslash), against @affinity/fastify with a backend on
 * @fastify/websocket that greets each connection with the path it saw. The same
 * expectations, HTTP and WebSocket alike; only the client differs: it listens for the
 * greeting from the start. The original waits for `open` and only then listens, and
 * loses a greeting that arrives in the same read as the 101 (which a tunnel relays as
 * the backend sends it, and which happens connecting to the backend directly too):
 * those tests are skipped in scripts/http-proxy-suite.mjs with this file as the reason.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyWebSocket from '@fastify/websocket'
import { WebSocket } from 'ws'
import affinity, { type AffinityFastifyOptions } from '@affinity/fastify'

/** The backend of ws-prefix-rewrite.js: HTTP answers its path, a WebSocket is greeted with it. */
async function backend (t: Test): Promise<string> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWebSocket)
  app.route({
    method: 'GET',
    url: '/*',
    handler: (req: FastifyRequest, reply: FastifyReply) => { void reply.send(req.url) },
    wsHandler: (socket: WebSocket, req: { url: string }) => {
      socket.send(req.url)
      socket.once('message', () => socket.close())
    },
  } as unknown as Parameters<FastifyInstance['route']>[0]) // wsHandler: @fastify/websocket's route option
  return app.listen({ port: 0, host: '127.0.0.1' })
}

/** The first message of a WebSocket at `url`, listened for from the start; 'error' when the upgrade is refused. */
function greeting (url: string): Promise<string> {
  return new Promise(resolve => {
    const ws = new WebSocket(url)
    ws.once('message', (m) => { resolve(String(m)); ws.close() })
    ws.once('unexpected-response', () => { resolve('error'); ws.terminate() })
    ws.once('error', () => resolve('error'))
    ws.once('close', () => resolve('error'))
  })
}

async function httpAnswer (url: string): Promise<string> {
  const res = await fetch(url)
  return res.ok ? res.text() : 'error'
}

interface Case {
  name: string
  options: Omit<AffinityFastifyOptions, 'upstreams'>
  /** The path of the backend URL (@fastify/http-proxy's `upstream: backend + path`, its default rewritePrefix). */
  backendPath?: string
  /** A wrapping plugin's prefix. */
  wrapper?: string
  expected: (path: string) => string
  paths: string[]
}

const CASES: Case[] = [
  { name: 'no prefix to `/`', options: {}, expected: p => p, paths: ['/', '/pub', '/pub/'] },
  { name: '`/pub/` to `/`', options: { prefix: '/pub/' }, expected: p => p.startsWith('/pub/') ? p.replace('/pub/', '/') : 'error', paths: ['/', '/pub/', '/pub/test'] },
  { name: '`/pub/` to `/public/`', backendPath: '/public/', options: { prefix: '/pub/' }, expected: p => p.startsWith('/pub/') ? p.replace('/pub/', '/public/') : 'error', paths: ['/', '/pub/', '/pub/test'] },
  { name: 'wrapped `/pub/` to `/public/`', backendPath: '/public/', wrapper: '/pub/', options: {}, expected: p => p.startsWith('/pub/') ? p.replace('/pub/', '/public/') : 'error', paths: ['/', '/pub/', '/pub/test'] },
  { name: 'parameterized Unicode prefix', options: { prefix: '/api/:tenant', rewritePrefix: '/internal/:tenant' }, expected: p => p.replace('/api/caf%C3%A9', '/internal/caf%C3%A9'), paths: ['/api/caf%C3%A9/socket'] },
  { name: 'percent-encoded backslashes remain path data', backendPath: '/internal', options: { prefix: '/pub' }, expected: () => '/internal/foo%5C..bar', paths: ['/pub/foo%5C..bar'] },
]

for (const c of CASES) {
  t.test(`websocket paths (@fastify/http-proxy ws-prefix-rewrite.js): ${c.name}`, async t => {
    const origin = await backend(t)
    const front = Fastify()
    t.teardown(() => front.close())
    const rewritePrefix = c.options.rewritePrefix ?? c.backendPath
    const register = async (app: FastifyInstance): Promise<void> => {
      await app.register(affinity, { upstreams: [origin], websocket: true, ...c.options, ...(rewritePrefix !== undefined ? { rewritePrefix } : {}) })
    }
    if (c.wrapper !== undefined) await front.register(register, { prefix: c.wrapper })
    else await register(front)
    const url = await front.listen({ port: 0, host: '127.0.0.1' })
    for (const path of c.paths) {
      t.equal(await greeting(`${url.replace('http:', 'ws:')}${path}`), c.expected(path), `WebSocket ${path}`)
      t.equal(await httpAnswer(`${url}${path}`), c.expected(path), `HTTP ${path}`)
    }
  })
}
