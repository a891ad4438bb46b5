import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import http from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { pattern, sendPattern } from './upstreams.js'
import { TLS } from './h2.js'

/** A request an upstream saw: its version, method, target and headers exactly as they arrived. */
export interface Seen {
  httpVersion: string
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  /** [name, value, …] as received: shows each header field, repeated ones included. */
  rawHeaders: string[]
}

/**
 * An upstream whose routes exercise streaming, for the HTTP/2 front tests. What it
 * does at a moment the test must control (the SSE event, a held answer) waits on
 * the test: the route emits an event with its response and the test writes to it,
 * so nothing here sleeps.
 *
 * - default: echo — JSON of method, url, headers, body length and sha256;
 * - /download?bytes=N — N bytes of `pattern` (content-length);
 * - /cookies — three Set-Cookie fields and a custom header;
 * - /trailers — a chunked body with trailer fields (Trailer announces them);
 * - /sse — a text/event-stream head at once, then `emit('sse', res)`: the test writes the events;
 * - /hold — a head and a first chunk, then `emit('hold', req, res)`;
 * - /die-mid-body — (HTTP/1.1) a 1 MB head, 100 kB of body, then the connection is destroyed;
 * - /upload-hold — reads the request body, emits 'upload' on its first chunk and
 *   'upload-end' if it ends (complete, as far as the upstream can tell), answering nothing.
 * Every request whose exchange ends before its response is complete emits
 * 'aborted' with its path (the proxy gave up on it).
 */
export interface StreamUpstream {
  name: string
  url: string
  seen: Seen[]
  events: EventEmitter
  close (): Promise<void>
}

/** Typed as node:http's: node:http2's compatibility request and response have every member used here. */
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void

function handler (up: StreamUpstream): Handler {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const path = url.pathname.replace(/^\/base/, '')
    up.seen.push({ httpVersion: req.httpVersion, method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders })
    // Not `writableFinished`: node:http2 reports a stream reset by the peer as finished.
    // And over h2 a reset with NO_ERROR mid-response shows only as the request's 'aborted'.
    let aborted = false
    const abort = (): void => { if (!aborted && !res.writableEnded) { aborted = true; up.events.emit('aborted', path) } }
    res.once('close', abort)
    req.once('aborted', abort)
    res.setHeader('x-served-by', up.name)
    if (path === '/download') {
      const bytes = Number(url.searchParams.get('bytes') ?? 1024)
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes })
      sendPattern(res, bytes, 64 * 1024)
      return
    }
    if (path === '/cookies') {
      res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': ['a=1; Path=/', 'b=2; HttpOnly', 'c=3; SameSite=Lax'], 'x-custom': 'kept' })
      res.end('cookies')
      return
    }
    if (path === '/trailers') {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum, x-status' })
      res.write('part one, ')
      res.addTrailers({ 'x-checksum': 'abc123', 'x-status': 'done' })
      res.end('part two')
      return
    }
    if (path === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      res.flushHeaders()
      up.events.emit('sse', res, req)
      return
    }
    if (path === '/hold') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      res.write(pattern(0, 1000))
      up.events.emit('hold', req, res)
      return
    }
    if (path === '/die-mid-body') {
      // HTTP/1.1 only: the connection drops a tenth into a 1 MB body.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1_000_000 })
      res.write(pattern(0, 100_000), () => req.socket.destroy())
      return
    }
    if (path === '/upload-hold') {
      req.once('data', () => up.events.emit('upload', req, res))
      req.once('end', () => up.events.emit('upload-end', path))
      req.resume()
      return
    }
    const h = createHash('sha256')
    let bytes = 0
    req.on('data', (c: Buffer) => { h.update(c); bytes += c.length })
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ name: up.name, httpVersion: req.httpVersion, method: req.method, url: req.url, headers: req.headers, bytes, sha256: h.digest('hex') }))
    })
  }
}

/** An HTTP/1.1 upstream on 127.0.0.1:0; WebSocket upgrades are greeted with its name and echoed. */
export async function startStreamUpstream (name: string): Promise<StreamUpstream> {
  const up: StreamUpstream = { name, url: '', seen: [], events: new EventEmitter(), close: async () => {} }
  const server = http.createServer(handler(up))
  const wss = new WebSocketServer({ noServer: true })
  server.on('upgrade', (req: http.IncomingMessage, socket, head) => {
    up.seen.push({ httpVersion: req.httpVersion, method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders })
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ name, url: req.url, headers: req.headers }))
      ws.on('message', (m) => ws.send(`${name}:${String(m)}`))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  up.close = () => new Promise<void>(resolve => {
    for (const c of wss.clients) c.terminate()
    server.closeAllConnections()
    server.close(() => resolve())
  })
  return up
}

/** An HTTP/2 upstream over TLS (the test certificate), HTTP/2 only, on 127.0.0.1:0. */
export async function startH2Upstream (name: string): Promise<StreamUpstream> {
  const up: StreamUpstream = { name, url: '', seen: [], events: new EventEmitter(), close: async () => {} }
  const server = http2.createSecureServer({ ...TLS }, handler(up) as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void)
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('session', (s) => { sessions.add(s); s.once('close', () => sessions.delete(s)) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  up.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  up.close = () => new Promise<void>(resolve => {
    for (const s of sessions) s.destroy()
    server.close(() => resolve())
  })
  return up
}
