import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { routeUpgrade } from '@affinity/core/adapter'
import type { FastifyInstance } from 'fastify'

const kListener = Symbol('affinity.upgradeListener')

interface ServerState { prefixes: Set<string>, routing: FastifyInstance['routing'] }
type ServerWithState = Server & { [kListener]?: ServerState }

/**
 * WebSocket upgrades go through Fastify's router (routeUpgrade), as
 * @fastify/http-proxy does (handleUpgrade in its index.js), so every hook of the
 * route runs for them too. What happens after routing differs from
 * @fastify/http-proxy, whose `ws`-to-`ws` relay forwards only the Cookie header and
 * the first subprotocol and accepts the handshake before the upstream answers: the
 * route handler hands the socket to the core's tunnel, which carries every
 * end-to-end header and answers with an HTTP error when no upstream takes it.
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
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!owns(s.prefixes, req.url ?? '/') && server.listenerCount('upgrade') > 1) return
      routeUpgrade(req, socket, head, s.routing)
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
