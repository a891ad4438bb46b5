import type { IncomingMessage, ServerResponse, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { pendingUpgrade, routeUpgrade } from '@affinity/core/adapter'

/** An Express app is a request listener with settings. */
export type ExpressApp = ((req: IncomingMessage, res: ServerResponse) => void) & { get (setting: string): unknown, set: unknown }

/**
 * Upgrades bypass Express, so `lb.upgrade` sends them through the app itself
 * (routeUpgrade): the same middleware (authentication, mount paths) and the same
 * `trust proxy` setting as HTTP requests, and the Affinity middleware finds the
 * socket on the request when the upgrade reaches it. The app is the one given as
 * `affinity({ app })`, else the server's own request listener (what `app.listen()`
 * and `http.createServer(app)` install). False when there is none.
 */
export function routeThroughApp (app: ExpressApp | undefined, req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
  // Several Affinity middlewares on one server (two mount paths) each add their
  // `lb.upgrade` listener, and each would route the upgrade through the whole app:
  // the first listener handles it, the others leave it alone.
  if (pendingUpgrade(req) !== undefined) return true
  const target = app ?? findApp(req)
  if (target === undefined) return false
  routeUpgrade(req, socket, head, target)
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
