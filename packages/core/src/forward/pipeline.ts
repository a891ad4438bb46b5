import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { ClientResponse } from './error-response.js'

/** What the watch needs of an exchange: its response, and what to call when its client is gone. */
interface Watched {
  readonly res: ClientResponse
  onClose (): void
}

/**
 * The client connection of an HTTP/1.1 response that waits in Node's pipeline queue
 * (requests are answered in order: until the ones before it are sent, a response has
 * no socket). When that connection closes, Node emits 'close' only on the response
 * being sent (_http_server.js abortIncoming: "Abort socket._httpMessage ?"), never on
 * the queued ones: an attempt paused on such a response's full buffer would stay in
 * flight for good (a drain that never completes, leastConnections skewed).
 */
export function queuedBehind (req: { socket?: unknown }, res: ClientResponse): Socket | undefined {
  if ('stream' in res || res.socket !== null) return undefined
  return (req as IncomingMessage).socket ?? undefined
}

/** Exchanges whose responses wait in a connection's pipeline queue: one 'close' listener per connection. */
const queued = new WeakMap<Socket, Set<Watched>>()

/** Calls `ex.onClose` if `socket` closes while `ex`'s response still waits for its turn. */
export function watchQueued (socket: Socket, ex: Watched): void {
  let waiting = queued.get(socket)
  if (waiting === undefined) {
    const set = waiting = new Set()
    queued.set(socket, set)
    socket.once('close', () => { for (const e of set) e.onClose() })
  }
  const set = waiting
  set.add(ex)
  // Its turn came: from then on the response's own 'close' tells.
  ex.res.once('socket', () => set.delete(ex))
}
