import { ServerResponse, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

/** Marks a raw request that arrived as an HTTP Upgrade, with its socket and head. */
export const kUpgrade = Symbol('affinity.upgrade')

export interface PendingUpgrade { socket: Duplex, head: Buffer }
export type UpgradeRequest = IncomingMessage & { [kUpgrade]?: PendingUpgrade }

/** The socket and head of a request that arrived as an Upgrade (routed by routeUpgrade), if it did. */
export function pendingUpgrade (req: object): PendingUpgrade | undefined {
  return (req as UpgradeRequest)[kUpgrade]
}

/**
 * Sends an Upgrade request through the framework's own request handling (Fastify's
 * router, an Express app), as @fastify/http-proxy does, so every hook and middleware
 * of the route runs for it too: authentication can refuse an upgrade with a normal
 * HTTP answer, and the client address follows the framework's trust-proxy rule.
 * The request carries its socket and head (kUpgrade) to the Affinity handler, which
 * hands them to the core's tunnel; anything else that answers (a 401, a 404) is
 * written to the socket as an HTTP response, which ends the exchange.
 */
export function routeUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer, handle: (req: IncomingMessage, res: ServerResponse) => void): void {
  ;(req as UpgradeRequest)[kUpgrade] = { socket, head }
  const res = new ServerResponse(req)
  res.assignSocket(socket as never)
  res.on('finish', () => socket.destroy())
  handle(req, res)
}
