/**
 * An HTTP/2 client over node:http2 (h2c, prior knowledge) that can stop where a
 * test wants: after the request head, after N bytes of the body (RST_STREAM), or
 * by dropping the whole connection.
 *
 * node:http2 validates what it sends, so some requests never leave the client: it
 * throws on a pseudo-header it does not know (':foo', ':status' in a request:
 * ERR_HTTP2_INVALID_PSEUDOHEADER), on connection-specific fields (Connection,
 * Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, and TE other than
 * "trailers": ERR_HTTP2_INVALID_CONNECTION_HEADERS, RFC 9113 §8.2.2) and on a name
 * that is not a token (ERR_INVALID_HTTP_TOKEN). It lowercases names and sends
 * values with obs-text (0x80–0xff) as they are; a NUL or a character above 0xff
 * in a value is sent and the server's nghttp2 resets the stream.
 */
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'

export interface H2Request {
  method: string
  path: string
  headers?: OutgoingHttpHeaders
  body?: Buffer
  /** Write the body in pieces of this size (default: one write). */
  chunk?: number
  /**
   * Stop early: RST_STREAM (CANCEL) right after the head, or after `bytes` body
   * bytes were written; or destroy the whole session after `bytes`.
   */
  abort?: { kind: 'rst-after-head' } | { kind: 'rst', bytes: number } | { kind: 'session', bytes: number }
}

export interface H2Answer {
  /** Undefined when no response head arrived. */
  status?: number
  headers?: IncomingHttpHeaders
  body: Buffer
  trailers?: IncomingHttpHeaders
  /** The code node:http2 refused the request with (it never left the client). */
  refused?: string
  /** The stream's error, if it ended with one (a reset, the session gone). */
  error?: string
}

export function connect (origin: string): ClientHttp2Session {
  const session = http2.connect(origin)
  session.on('error', () => {}) // reported per stream
  return session
}

/** Sends one request on `session`; resolves when its stream has closed. */
export function send (session: ClientHttp2Session, r: H2Request): Promise<H2Answer> {
  const body = r.body ?? Buffer.alloc(0)
  const abort = r.abort
  let stream: http2.ClientHttp2Stream
  try {
    stream = session.request({ ':method': r.method, ':path': r.path, ...r.headers }, { endStream: body.length === 0 && abort === undefined })
  } catch (err) {
    return Promise.resolve({ body: Buffer.alloc(0), refused: (err as NodeJS.ErrnoException).code ?? String(err) })
  }
  const answer: H2Answer = { body: Buffer.alloc(0) }
  const chunks: Buffer[] = []
  stream.on('response', (headers) => { answer.status = Number(headers[':status']); answer.headers = headers })
  stream.on('trailers', (trailers) => { answer.trailers = trailers })
  stream.on('data', (c: Buffer) => chunks.push(c))
  stream.on('error', (err: NodeJS.ErrnoException) => { answer.error = err.code ?? err.message })
  // (Not events.once: it rejects on the 'error' a reset stream emits before 'close'.)
  const closed = new Promise<H2Answer>(resolve => stream.once('close', () => { answer.body = Buffer.concat(chunks); resolve(answer) }))
  const stop = (): void => {
    if (abort?.kind === 'session') session.destroy()
    else stream.close(http2.constants.NGHTTP2_CANCEL)
  }
  if (abort?.kind === 'rst-after-head') {
    // The HEADERS frame is written before the RST_STREAM that follows it.
    stream.once('ready', stop)
    return closed
  }
  if (abort === undefined && body.length === 0) return closed // ended with its HEADERS frame
  const limit = abort === undefined ? body.length : Math.min(abort.bytes, body.length)
  const step = Math.max(1, r.chunk ?? limit)
  const write = (off: number): void => {
    if (stream.destroyed) return
    if (off >= limit) {
      if (abort === undefined) stream.end()
      else stop()
      return
    }
    const end = Math.min(limit, off + step)
    // Each write's callback runs once it is handed to the session: flow control
    // paces the upload, and an abort comes after the bytes it follows.
    stream.write(body.subarray(off, end), () => write(end))
  }
  write(0)
  return closed
}

/** One request on its own session, closed afterwards (for checks between cases). */
export async function h2request (origin: string, r: H2Request): Promise<H2Answer> {
  const session = connect(origin)
  try {
    return await send(session, r)
  } finally {
    session.close()
  }
}
