import { ServerResponse, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'

/** Marks a raw request that arrived as an HTTP Upgrade, with its socket and head. */
export const kUpgrade = Symbol('affinity.upgrade')

export interface PendingUpgrade { socket: Duplex, head: Buffer }
export type UpgradeRequest = IncomingMessage & { [kUpgrade]?: PendingUpgrade }

const kListener = Symbol('affinity.upgradeListener')

interface ServerState { prefixes: Set<string>, routing: (req: IncomingMessage, res: ServerResponse) => void }
type ServerWithState = Server & { [kListener]?: ServerState }

/**
 * WebSocket upgrades go through Fastify's router, as @fastify/http-proxy does
 * (handleUpgrade in its index.js), so every hook of the route runs for them too —
 * authentication can refuse an upgrade with a normal HTTP answer, and `request.ip`
 * follows `trustProxy`. What happens after routing differs from @fastify/http-proxy,
 * whose `ws`-to-`ws` relay forwards only the Cookie header and the first
 * subprotocol and accepts the handshake before the upstream answers: the route
 * handler hands the raw socket to the core forwarder instead (packages/core
 * forward/upgrade.ts), which carries every end-to-end header and answers with an
 * HTTP error when no upstream takes the upgrade.
 *
 * One listener per HTTP server serves every registration on it; an upgrade under
 * none of their prefixes is left to other listeners, or answered 404 by Fastify
 * when there are none.
 */
export function routeUpgrades (fastify: FastifyInstance, prefix: string): void {
  const server = fastify.server as ServerWithState
  let state = server[kListener]
  if (state === undefined) {
    const s: ServerState = { prefixes: new Set(), routing: fastify.routing }
    state = s
    server[kListener] = s
    server.on('upgrade', (req: UpgradeRequest, socket: Duplex, head: Buffer) => {
      if (!owns(s.prefixes, req.url ?? '/') && server.listenerCount('upgrade') > 1) return
      req[kUpgrade] = { socket, head }
      const res = new ServerResponse(req)
      res.assignSocket(socket as never)
      // A response written by Fastify (404, an auth hook's 401…) ends the exchange.
      res.on('finish', () => socket.destroy())
      s.routing(req, res)
    })
  }
  state.prefixes.add(prefix)
}

function owns (prefixes: Set<string>, url: string): boolean {
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  for (const prefix of prefixes) {
    const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
    if (base === '' || path === base || path.startsWith(`${base}/`)) return true
  }
  return false
}
