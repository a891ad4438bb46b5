import { ServerResponse, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'

/** Marks a raw request that arrived as an HTTP Upgrade, with its socket and head. */
export const kUpgrade = Symbol('affinity.upgrade')

export interface PendingUpgrade { socket: Duplex, head: Buffer }
export type UpgradeRequest = IncomingMessage & { [kUpgrade]?: PendingUpgrade }

/** An Express app is a request listener with settings. */
export type ExpressApp = ((req: IncomingMessage, res: ServerResponse) => void) & { get (setting: string): unknown, set: unknown }

/**
 * Upgrades bypass Express, so `lb.upgrade` sends them through the app itself: the
 * same middleware (authentication, mount paths) and the same `trust proxy` setting
 * as HTTP requests, and the Affinity middleware finds the socket on the request
 * when the upgrade reaches it. Anything that answers instead (a 401 from an auth
 * middleware, Express's 404 for a path outside the mount) is written to the socket
 * as a normal HTTP response.
 * The app is the one given as `affinity({ app })`, else the server's own request
 * listener (what `app.listen()` and `http.createServer(app)` install).
 */
export function routeUpgrade (app: ExpressApp | undefined, req: UpgradeRequest, socket: Duplex, head: Buffer): boolean {
  // Several Affinity middlewares on one server (two mount paths) each add their
  // `lb.upgrade` listener, and each would route the upgrade through the whole app:
  // the first listener handles it, the others leave it alone.
  if (req[kUpgrade] !== undefined) return true
  const target = app ?? findApp(req)
  if (target === undefined) return false
  req[kUpgrade] = { socket, head }
  const res = new ServerResponse(req)
  res.assignSocket(socket as never)
  res.on('finish', () => socket.destroy())
  target(req, res)
  return true
}

function findApp (req: IncomingMessage): ExpressApp | undefined {
  const server = (req.socket as { server?: Server } | undefined)?.server
  if (server === undefined) return undefined
  for (const fn of server.listeners('request')) {
    const candidate = fn as unknown as { get?: unknown, set?: unknown }
    if (typeof candidate.get === 'function' && candidate.set !== undefined) return fn as unknown as ExpressApp
  }
  return undefined
}
