import { createRequire } from 'node:module'
import type { Socket } from 'node:net'
import { buildConnector, Pool, type Dispatcher } from 'undici'

/**
 * undici's own key for the HTTP/1.1 parser it keeps on each socket (lib/core/symbols.js),
 * for finishPausedAtEnd. A later undici 7 that moves or hides it (an `exports` map)
 * turns that workaround off instead of failing to load.
 */
const kParser: symbol | undefined = (() => {
  try {
    const k = (createRequire(import.meta.url)('undici/lib/core/symbols.js') as { kParser?: unknown }).kParser
    return typeof k === 'symbol' ? k : undefined
  } catch {
    return undefined
  }
})()

/**
 * The connection pool for one upstream origin: undici's Pool, with a connector
 * that lets an early answer through (see keepReadingAfterWriteError).
 * Called once per upstream added, never per request.
 */
export function createPool (origin: string, opts: Pool.Options): Pool {
  const { connect, connectTimeout, tls, maxCachedSessions, socketPath, autoSelectFamily, autoSelectFamilyAttemptTimeout, allowH2, ...rest } = opts as Pool.Options & { tls?: object }
  // The connector undici's Pool would build from these options (lib/dispatcher/pool.js),
  // or the user's own connect function, wrapped.
  const base: buildConnector.connector = typeof connect === 'function'
    ? connect
    : buildConnector({
      ...(tls as object | undefined),
      maxCachedSessions,
      allowH2,
      socketPath,
      timeout: connectTimeout,
      ...(typeof autoSelectFamily === 'boolean' ? { autoSelectFamily, autoSelectFamilyAttemptTimeout } : undefined),
      ...(connect as object | undefined),
    } as buildConnector.BuildOptions)
  const wrapped: buildConnector.connector = (options, callback) => base(options, (err, socket) => {
    if (err === null) {
      keepReadingAfterWriteError(socket)
      finishPausedAtEnd(socket)
    }
    ;(callback as (err: Error | null, socket: Socket | null) => void)(err, socket)
  })
  return new Pool(origin, { ...rest, allowH2, connect: wrapped })
}

/**
 * Closes the pools of a balancer that is closing: requests in flight get up to
 * `graceMs` to finish (undici's close() waits for them), then whatever is still
 * open is destroyed so close() never hangs on a slow upstream.
 */
export async function closePools (pools: readonly Dispatcher[], graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const grace = new Promise<void>(resolve => { timer = setTimeout(resolve, graceMs) })
  await Promise.race([Promise.all(pools.map(p => p.close().catch(() => {}))), grace])
  clearTimeout(timer)
  await Promise.all(pools.map(p => {
    const pool = p as Pool
    return pool.closed && !pool.destroyed ? pool.destroy().catch(() => {}) : undefined
  }))
}

/**
 * An upstream may answer before it has read the whole request body (a 413 for an
 * upload too large, a 401 before the upload) and then close the connection, as
 * RFC 9112 §9.6 allows. Our next body write then fails (EPIPE, or ECONNRESET once
 * its reset arrives), and Node destroys the socket on that write error before the
 * answer waiting in the receive buffer is read: undici reports a failed request,
 * the client would get a 502 and the upstream would be blamed for a reset.
 *
 * Linux keeps data that arrived before a reset readable (tcp_recvmsg returns queued
 * data before the pending error), so a write error is held instead: the socket
 * stops writing, keeps reading, and undici's parser completes the answer as the
 * "response completed before request" case it handles (client-h1.js
 * onMessageComplete). Whatever ends the read side next — the answer complete, end
 * of stream, a read error, undici's headers timeout — destroys the socket as usual,
 * so an upstream that closed without answering is still a reset.
 *
 * The hook is an undici connector (its documented extension point); it touches
 * only HTTP/1.1 sockets, where the request body and the answer share one stream.
 */
function keepReadingAfterWriteError (socket: Socket): void {
  if ((socket as { alpnProtocol?: unknown }).alpnProtocol === 'h2') return
  const destroy = socket.destroy
  socket.destroy = function (this: Socket, err?: Error) {
    if ((err as NodeJS.ErrnoException | undefined)?.syscall === 'write' && !this.destroyed && this.readable) {
      // The failed write also marks the readable side errored, which stops reading
      // (Node's onwrite): clear that mark so the answer can be read.
      const state = (this as unknown as { _readableState: { errored: Error | null } })._readableState
      if (state.errored === err) state.errored = null
      this.read(0)
      return this
    }
    return destroy.call(this, err)
  } as typeof socket.destroy
}

/**
 * undici 7 crashes the process (an AssertionError thrown from the socket's 'end'
 * handler, nodejs/undici#5360) when an upstream closes the connection while the
 * response parser is paused by backpressure and everything received was parsed: a
 * `Connection: close` answer whose last chunk filled a slow client's buffer (or a
 * pipelined client's queued response), a body delimited by the close. undici 8 fixes
 * it (nodejs/undici#5474) but needs Node 22. Until then the parser is resumed just
 * before undici handles the end: nothing is left to read at that point (the end
 * comes only once the socket's buffer is empty), so no body is pushed past the
 * backpressure; the answer completes, or fails if it was cut short.
 */
function finishPausedAtEnd (socket: Socket): void {
  if (kParser === undefined || (socket as { alpnProtocol?: unknown }).alpnProtocol === 'h2') return
  socket.prependListener('end', () => {
    const parser = (socket as unknown as Record<symbol, { paused?: boolean, ptr?: unknown, resume? (): void } | null | undefined>)[kParser]
    if (parser?.paused === true && parser.ptr != null && typeof parser.resume === 'function') parser.resume()
  })
}
