/**
 * A raw HTTP/1.x client (bytes sent exactly as given, answers parsed from what comes
 * back) and a way to know when a front server has seen every client connection
 * close. Shared by the hostile-input and blame tables (test/adapters/hostile.ts,
 * test/adapters/blame.ts).
 */
import type { Server } from 'node:http'
import type { Http2Server } from 'node:http2'
import net, { type Socket } from 'node:net'

const HOST = '127.0.0.1'

export interface RawAnswer { status: number, headers: Record<string, string[]>, body: Buffer, complete: boolean }
export interface RawExchange { answers: RawAnswer[], raw: Buffer, closed: boolean, error?: string }

export interface ExchangeOptions {
  /** Gives up (and closes) after this long without the server closing or enough answers (default 2000). */
  timeoutMs?: number
  /** Stops once this many complete answers arrived. */
  answers?: number
  /** Sends only this many bytes, then destroys the socket (after `abortDelayMs`). */
  abortAfter?: number
  abortDelayMs?: number
}

/**
 * Writes `payload` to a fresh connection to `port` and collects the answers until
 * the server closes, `answers` complete answers arrived, or `timeoutMs` passed.
 * The socket is always destroyed when it resolves.
 */
export function exchange (port: number, payload: string | Buffer, opts: ExchangeOptions = {}): Promise<RawExchange> {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload
  return new Promise(resolve => {
    const socket = net.connect(port, HOST)
    const chunks: Buffer[] = []
    let error: string | undefined
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      const raw = Buffer.concat(chunks)
      resolve({ answers: parseAnswers(raw, closed), raw, closed, ...(error !== undefined ? { error } : {}) })
    }
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 2000)
    socket.on('data', (d: Buffer) => {
      chunks.push(d)
      if (opts.answers !== undefined) {
        const got = parseAnswers(Buffer.concat(chunks), false)
        if (got.length >= opts.answers && got.every(a => a.complete)) finish(false)
      }
    })
    socket.on('error', (err: NodeJS.ErrnoException) => { error = err.code ?? err.message })
    socket.on('close', () => finish(true))
    if (opts.abortAfter !== undefined) {
      socket.write(bytes.subarray(0, opts.abortAfter))
      setTimeout(() => finish(false), opts.abortDelayMs ?? 0)
    } else {
      socket.write(bytes)
    }
  })
}

/** HTTP/1.x responses in `buf`, in order (1xx interim answers skipped; never sent a HEAD). */
export function parseAnswers (buf: Buffer, closed: boolean): RawAnswer[] {
  const out: RawAnswer[] = []
  let off = 0
  while (off < buf.length) {
    const end = buf.indexOf('\r\n\r\n', off)
    if (end === -1) break
    const lines = buf.toString('latin1', off, end).split('\r\n')
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)
    if (m === null) {
      out.push({ status: -1, headers: {}, body: buf.subarray(off), complete: true })
      break
    }
    const status = Number(m[1])
    const headers: Record<string, string[]> = {}
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':')
      ;(headers[line.slice(0, i).trim().toLowerCase()] ??= []).push(line.slice(i + 1).trim())
    }
    off = end + 4
    if (status >= 100 && status < 200 && status !== 101) continue
    if (status === 101) {
      out.push({ status, headers, body: buf.subarray(off), complete: true })
      break
    }
    const te = (headers['transfer-encoding'] ?? []).join(',').toLowerCase()
    const cl = headers['content-length']?.[0]
    if (status === 204 || status === 304) {
      out.push({ status, headers, body: Buffer.alloc(0), complete: true })
    } else if (te.includes('chunked')) {
      const r = dechunk(buf, off)
      out.push({ status, headers, body: r.body, complete: r.complete })
      off = r.next
    } else if (cl !== undefined) {
      const n = Number(cl)
      const body = buf.subarray(off, off + n)
      out.push({ status, headers, body, complete: body.length === n })
      off += n
    } else {
      out.push({ status, headers, body: buf.subarray(off), complete: closed })
      off = buf.length
    }
  }
  return out
}

function dechunk (buf: Buffer, start: number): { body: Buffer, complete: boolean, next: number } {
  const parts: Buffer[] = []
  let off = start
  for (;;) {
    const eol = buf.indexOf('\r\n', off)
    if (eol === -1) return { body: Buffer.concat(parts), complete: false, next: buf.length }
    const size = parseInt(buf.toString('latin1', off, eol).split(';')[0]!, 16)
    off = eol + 2
    if (!(size > 0)) {
      const end = buf.indexOf('\r\n\r\n', off - 2)
      return end === -1
        ? { body: Buffer.concat(parts), complete: false, next: buf.length }
        : { body: Buffer.concat(parts), complete: true, next: end + 4 }
    }
    if (off + size + 2 > buf.length) return { body: Buffer.concat([...parts, buf.subarray(off)]), complete: false, next: buf.length }
    parts.push(buf.subarray(off, off + size))
    off += size + 2
  }
}

/** The first value of a header in a raw answer. */
export const headerOf = (a: RawAnswer, name: string): string | undefined => a.headers[name]?.[0]

/**
 * The client connections a front server holds open, as the server sees them.
 * `exchange` resolving says only that the client is done: the server may not even
 * have read the request yet (on a loaded machine the bytes and the close arrive
 * later), so a check of the books must first wait until the server has seen every
 * connection close.
 */
export class FrontConnections {
  readonly #open = new Set<Socket>()
  #waiting: Array<() => void> = []

  constructor (server: Server | Http2Server) {
    server.on('connection', (socket: Socket) => {
      this.#open.add(socket)
      socket.once('close', () => {
        this.#open.delete(socket)
        const waiting = this.#waiting
        this.#waiting = []
        for (const w of waiting) w()
      })
    })
  }

  get open (): number {
    return this.#open.size
  }

  /** The connections open now. */
  sockets (): Socket[] {
    return [...this.#open]
  }

  /** Resolves once the server has no client connection open (at once when it has none). */
  idle (): Promise<void> {
    return this.until(() => this.#open.size === 0)
  }

  /** Resolves on the first connection close after which `cond` holds (at once if it holds). */
  until (cond: () => boolean): Promise<void> {
    if (cond()) return Promise.resolve()
    return new Promise(resolve => {
      const check = (): void => {
        if (cond()) resolve()
        else this.#waiting.push(check)
      }
      this.#waiting.push(check)
    })
  }
}
