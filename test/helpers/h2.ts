import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import affinityPlugin from '@affinity/fastify'
import type { BalancerSource } from '@affinity/core'

/** The test-only self-signed certificate for localhost / 127.0.0.1 (test/fixtures/tls/README.md). */
export const TLS = {
  key: readFileSync(new URL('../fixtures/tls/key.pem', import.meta.url)),
  cert: readFileSync(new URL('../fixtures/tls/cert.pem', import.meta.url)),
}

/** How the Fastify app in front speaks: h2c (HTTP/2 without TLS), h2 over TLS, or TLS with HTTP/1.1 allowed too. */
export type FrontMode = 'h2c' | 'tls' | 'tls+http1'
export const FRONT_MODES: readonly FrontMode[] = ['h2c', 'tls', 'tls+http1']

export interface H2Front {
  /** Origin, http:// for h2c, https:// over TLS. */
  url: string
  /** `url` + the prefix. */
  base: string
  app: FastifyInstance
  /** The HTTP version of each request the app received, in order: which protocol the clients really spoke. */
  versions: string[]
  close (): Promise<void>
}

/** A Fastify `http2: true` app with the plugin under `prefix` (default '/api'), torn down with `t`. */
export async function startH2Front (t: Test, mode: FrontMode, source: BalancerSource, opts: { prefix?: string, websocket?: boolean } = {}): Promise<H2Front> {
  const prefix = opts.prefix ?? '/api'
  // Typed as the default instance: the plugin's types are node:http's (see packages/fastify).
  const app = (mode === 'h2c'
    ? Fastify({ http2: true, forceCloseConnections: true })
    : Fastify({ http2: true, https: { ...TLS, allowHTTP1: mode === 'tls+http1' }, forceCloseConnections: true })) as unknown as FastifyInstance
  // node:http2 servers (Node < 24) do not close their sessions on close(): Fastify's
  // forceCloseConnections does (closeHttp2Sessions), but only gracefully; a stream held
  // open by a test would keep the teardown waiting, so sessions are destroyed here.
  const sessions = new Set<{ destroy (): void }>()
  app.server.on('session', (s: http2.ServerHttp2Session) => { sessions.add(s); s.once('close', () => sessions.delete(s)) })
  app.server.on('secureConnection', (s: { destroy (): void, once (e: string, f: () => void): void }) => { sessions.add(s); s.once('close', () => sessions.delete(s)) })
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    const done = app.close()
    for (const s of sessions) s.destroy()
    await done
  }
  t.teardown(close)
  const versions: string[] = []
  app.addHook('onRequest', (request, _reply, done) => { versions.push(request.raw.httpVersion); done() })
  await app.register(affinityPlugin, { prefix, websocket: opts.websocket ?? true, ...source })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `${mode === 'h2c' ? 'http' : 'https'}://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  return { url, base: url + prefix, app, versions, close }
}

/** A node:http2 client session (trusting the test CA), closed with `t`. */
export async function h2Session (t: Test, origin: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(origin, { ca: TLS.cert })
  t.teardown(() => { session.destroy() })
  session.on('error', () => {}) // a test that resets streams reports through them
  await once(session, 'connect')
  return session
}

export interface H2Response {
  status: number
  headers: http2.IncomingHttpHeaders
  body: Buffer
  trailers: http2.IncomingHttpHeaders | undefined
  json<T = any> (): T
}

/** One request on an h2 session, with `body` (written whole, or piped with backpressure) unless it is absent. */
export function h2Request (session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | string | Readable): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined })
    let head: http2.IncomingHttpHeaders = {}
    let trailers: http2.IncomingHttpHeaders | undefined
    const chunks: Buffer[] = []
    stream.on('response', (h) => { head = h })
    stream.on('trailers', (h) => { trailers = h })
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('error', reject)
    stream.on('end', () => {
      const b = Buffer.concat(chunks)
      resolve({ status: Number(head[':status']), headers: head, body: b, trailers, json: () => JSON.parse(b.toString('utf8')) })
    })
    if (body instanceof Readable) body.pipe(stream)
    else if (body !== undefined) stream.end(body)
  })
}

/** A node:https request trusting the test CA (HTTP/1.1: node:https has no h2). */
export function httpsRequest (url: string, opts: https.RequestOptions = {}, body?: Buffer): Promise<{ res: IncomingMessage, body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { ca: TLS.cert, agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ res, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}
