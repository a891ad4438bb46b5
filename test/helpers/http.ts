import http from 'node:http'
import { Readable } from 'node:stream'
import { WebSocket } from 'ws'

export interface RawResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
  json<T = any> (): T
}

/**
 * A plain node:http client: unlike fetch it may send any header (Connection,
 * TE, Proxy-*, a spoofed Host…) and shows the response exactly as received.
 */
export function request (url: string, opts: { method?: string, headers?: http.OutgoingHttpHeaders, body?: Buffer | string | Readable, agent?: http.Agent | false } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('aborted', () => reject(new Error('response aborted')))
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) })
      })
    })
    req.on('error', reject)
    if (opts.body instanceof Readable) opts.body.pipe(req)
    else req.end(opts.body)
  })
}

/** A browser-like cookie jar: remembers Set-Cookie name=value pairs and sends them back. */
export class CookieJar {
  readonly cookies = new Map<string, string>()

  store (setCookie: string | string[] | undefined): void {
    for (const line of setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const pair = line.split(';')[0]!
      const eq = pair.indexOf('=')
      this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim())
    }
  }

  header (): string | undefined {
    if (this.cookies.size === 0) return undefined
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }
}

/** A browser: keeps its cookies, sends them back, remembers what the last answer set. */
export class Browser {
  readonly jar = new CookieJar()
  last: RawResponse | undefined

  async get (url: string, headers: http.OutgoingHttpHeaders = {}): Promise<RawResponse> {
    const cookie = this.jar.header()
    const res = await request(url, { headers: cookie === undefined ? headers : { ...headers, cookie } })
    this.jar.store(res.headers['set-cookie'])
    this.last = res
    return res
  }

  /** GET base/echo and return which upstream answered. */
  async visit (base: string, headers: http.OutgoingHttpHeaders = {}): Promise<string> {
    const res = await this.get(`${base}/echo`, headers)
    if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.toString()}`)
    return res.json().name
  }

  cookie (name = 'affinity'): string | undefined {
    return this.jar.cookies.get(name)
  }
}

/** Opens a WebSocket and resolves with it and its first message (the upstream's greeting). */
export function openWebSocket (url: string, headers: Record<string, string> = {}, protocols?: string[]): Promise<{ ws: WebSocket, hello: any, upgradeHeaders: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers })
    let upgradeHeaders: http.IncomingHttpHeaders = {}
    ws.once('upgrade', (res) => { upgradeHeaders = res.headers })
    ws.once('message', (m) => resolve({ ws, hello: JSON.parse(String(m)), upgradeHeaders }))
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`unexpected response ${res.statusCode}`), { statusCode: res.statusCode, headers: res.headers })))
    ws.once('error', reject)
  })
}

export function nextMessage (ws: WebSocket): Promise<string> {
  return new Promise(resolve => ws.once('message', (m) => resolve(String(m))))
}

export const delay = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Waits for `cond` to hold, polling; fails after `ms`. */
export async function until (cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await delay(10)
  }
}
