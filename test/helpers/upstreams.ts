import { createHash } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'

/** A real upstream app on 127.0.0.1:0 that tells who served a request and what it saw. */
export interface TestUpstream {
  name: string
  url: string
  port: number
  server: http.Server
  /** Requests seen, in order (method, url, headers). */
  seen: Array<{ method: string, url: string, headers: http.IncomingHttpHeaders }>
  /** What /health answers. */
  healthStatus: number
  /** When set, every request but /health is answered with this status. */
  failStatus: number | undefined
  /** When set, every HTTP request (health checks too) waits this many ms before it is handled and recorded in `seen`: a slow server. Off by default. */
  delayMs: number | undefined
  /** Per-user in-memory carts, the state that stickiness protects. */
  carts: Map<string, string[]>
  close (): Promise<void>
}

/** Deterministic bytes for big bodies: byte i is (i * 31 + 7) & 255. */
export function pattern (offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) b[i] = ((offset + i) * 31 + 7) & 255
  return b
}

export function sha256 (buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex')
}

/** Writes `bytes` bytes of `pattern` in `chunk`-sized writes, with backpressure, then ends. */
export function sendPattern (res: http.ServerResponse, bytes: number, chunk: number): void {
  let off = 0
  const pump = (): void => {
    while (off < bytes) {
      const n = Math.min(chunk, bytes - off)
      const ok = res.write(pattern(off, n))
      off += n
      if (!ok) { res.once('drain', pump); return }
    }
    res.end()
  }
  pump()
}

/** sha256 of `bytes` bytes of `pattern`, computed in chunks. */
export function patternSha (bytes: number): string {
  const h = createHash('sha256')
  const chunk = 1 << 20
  for (let off = 0; off < bytes; off += chunk) h.update(pattern(off, Math.min(chunk, bytes - off)))
  return h.digest('hex')
}

/** Starts one upstream on `host` (default 127.0.0.1) and `port` (default: a free one). */
export async function startUpstream (name: string, listen: { host?: string, port?: number } = {}): Promise<TestUpstream> {
  const host = listen.host ?? '127.0.0.1'
  const up: TestUpstream = {
    name, url: '', port: 0, server: undefined as unknown as http.Server, seen: [], healthStatus: 200, failStatus: undefined, delayMs: undefined, carts: new Map(),
    close: async () => {},
  }
  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x')
    up.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    const path = url.pathname.replace(/^\/base/, '')
    if (path === '/health') {
      res.writeHead(up.healthStatus).end()
      return
    }
    if (up.failStatus !== undefined) {
      res.writeHead(up.failStatus, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ name }))
      return
    }
    if (path === '/hang') return // never answers
    if (path === '/status') {
      res.writeHead(Number(url.searchParams.get('code') ?? 200), { 'content-type': 'application/json' })
      res.end(JSON.stringify({ name }))
      return
    }
    if (path === '/slow') {
      const t = setTimeout(() => res.end(JSON.stringify({ name })), Number(url.searchParams.get('ms') ?? 200))
      req.on('close', () => clearTimeout(t))
      return
    }
    if (path === '/download') {
      const bytes = Number(url.searchParams.get('bytes') ?? 1024)
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes, 'x-served-by': name })
      sendPattern(res, bytes, 256 * 1024)
      return
    }
    if (path === '/die-mid-body') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1_000_000 })
      res.write(pattern(0, 100_000), () => req.socket.destroy())
      return
    }
    if (path === '/destroy') {
      // Reads the request, then drops the connection without answering.
      req.resume()
      req.on('end', () => req.socket.destroy())
      return
    }
    if (path === '/early-close' || path === '/early-destroy') {
      // An early answer (RFC 9112 §9.6): 413 before reading the upload, then the
      // connection closed — by Node after `Connection: close`, or destroyed outright.
      // Either way the unread body makes the kernel reset the connection.
      const body = `upload too large (${name})`
      const headers = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-served-by': name }
      if (path === '/early-close') {
        res.writeHead(413, { ...headers, connection: 'close' }).end(body)
      } else {
        res.writeHead(413, headers).end(body, () => req.socket.destroy())
      }
      return
    }
    if (path === '/sse') {
      // Head at once, then a few events with pauses between them.
      req.resume()
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-served-by': name })
      res.flushHeaders()
      let n = Number(url.searchParams.get('events') ?? 3)
      const next = (): void => {
        if (n-- === 0) { res.end(); return }
        res.write(`data: ${name} ${n}\n\n`)
        timer = setTimeout(next, Number(url.searchParams.get('gap') ?? 10))
      }
      let timer = setTimeout(next, 0)
      res.once('close', () => clearTimeout(timer))
      return
    }
    if (path === '/trailers') {
      // A chunked answer with a trailer field, after the whole request body.
      const h = createHash('sha256')
      req.on('data', (c: Buffer) => h.update(c))
      req.on('end', () => {
        // (A HEAD answer has no body, so no chunked coding to carry trailers: Node refuses them.)
        if (req.method === 'HEAD') { res.writeHead(200, { 'x-served-by': name }).end(); return }
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum', 'x-served-by': name })
        res.write(`${name} `)
        res.addTrailers({ 'x-checksum': h.digest('hex') })
        res.end('done')
      })
      return
    }
    if (path === '/hop') {
      res.writeHead(200, {
        connection: 'x-upstream-private, keep-alive',
        'x-upstream-private': 'secret',
        'keep-alive': 'timeout=5',
        'proxy-authenticate': 'Basic',
        'x-end-to-end': 'yes',
        'content-type': 'application/json',
      })
      res.end(JSON.stringify({ name }))
      return
    }
    if (path === '/cart/add') {
      const user = String(req.headers['x-user'] ?? url.searchParams.get('user') ?? 'anon')
      const item = url.searchParams.get('item') ?? 'item'
      const cart = up.carts.get(user) ?? []
      cart.push(item)
      up.carts.set(user, cart)
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ name, cart }))
      return
    }
    // Default: echo. Hashes the body so big uploads can be compared without buffering twice.
    const h = createHash('sha256')
    let bytes = 0
    req.on('data', (c: Buffer) => { h.update(c); bytes += c.length })
    req.on('end', () => {
      const headers: Record<string, string> = { 'content-type': 'application/json', 'x-served-by': name }
      const setCookie = url.searchParams.get('set-cookie')
      if (setCookie) headers['set-cookie'] = setCookie
      res.writeHead(200, headers)
      res.end(JSON.stringify({ name, method: req.method, url: req.url, headers: req.headers, bytes, sha256: h.digest('hex') }))
    })
  }
  const server = http.createServer((req, res) => {
    if (up.delayMs === undefined) {
      handle(req, res)
      return
    }
    const timer = setTimeout(() => handle(req, res), up.delayMs)
    res.once('close', () => clearTimeout(timer))
  })
  const wss = new WebSocketServer({ noServer: true })
  server.on('upgrade', (req, socket, head) => {
    up.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    if ((req.url ?? '').startsWith('/ws-deny')) {
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: 6\r\nconnection: close\r\n\r\ndenied')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ name, url: req.url, headers: req.headers }))
      ws.on('message', (m) => ws.send(`${name}:${String(m)}`))
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(listen.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  up.server = server
  up.port = port
  up.url = `http://${host}:${port}`
  up.close = () => new Promise<void>(resolve => {
    for (const c of wss.clients) c.terminate()
    server.closeAllConnections()
    server.close(() => resolve())
  })
  return up
}

export async function startUpstreams (n: number, prefix = 'S'): Promise<TestUpstream[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => startUpstream(`${prefix}${i + 1}`)))
}

/**
 * `n` upstreams as a Kubernetes headless service looks: one port, one address each,
 * 127.0.0.2, 127.0.0.3… (all of 127/8 is loopback on Linux), named by their address.
 * The port is the one the first gets; if another address has it taken, all start
 * again on a new port.
 */
export async function startHeadlessFleet (n: number): Promise<TestUpstream[]> {
  if (n < 1 || n > 8) throw new Error('startHeadlessFleet: 1 to 8 upstreams (127.0.0.2–127.0.0.9)')
  for (let attempt = 0; ; attempt++) {
    const first = await startUpstream('127.0.0.2', { host: '127.0.0.2' })
    const rest = await Promise.allSettled(Array.from({ length: n - 1 }, (_, i) => startUpstream(`127.0.0.${i + 3}`, { host: `127.0.0.${i + 3}`, port: first.port })))
    const started = [first, ...rest.flatMap(r => r.status === 'fulfilled' ? [r.value] : [])]
    if (started.length === n) return started
    await Promise.all(started.map(u => u.close()))
    if (attempt === 4) throw (rest.find(r => r.status === 'rejected') as PromiseRejectedResult).reason
  }
}

/** A loopback port with nothing listening (connections are refused). */
export async function deadUrl (): Promise<string> {
  const s = http.createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>(resolve => s.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}
