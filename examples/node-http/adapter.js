// A whole Affinity adapter for plain node:http: what @affinity/fastify and
// @affinity/express do, minus their frameworks. The adapter kit
// (@affinity/core/adapter) holds everything adapters share; an adapter only says how
// its framework hands over a request (the RouteRequest a strategy reads) and where
// the hooks go. A Koa or Hono adapter is the same page.
import { parse as parseCookie } from 'cookie'
import { adapterOptions, logChoice, Mount, pendingUpgrade, routeUpgrade } from '@affinity/core/adapter'

/**
 * The view of a request a strategy reads. `ip` is the socket's peer: behind a
 * trusted proxy, read X-Forwarded-For here instead (as the frameworks' trust-proxy
 * settings do). Cookies are parsed only when a strategy asks.
 */
class NodeRouteRequest {
  #req
  #cookies
  constructor (req) { this.#req = req }
  get method () { return this.#req.method ?? 'GET' }
  get url () { return this.#req.url ?? '/' }
  get headers () { return this.#req.headers }
  get ip () { return this.#req.socket.remoteAddress }
  get protocol () { return this.#req.socket.encrypted === true ? 'https' : 'http' }
  get cookies () { return (this.#cookies ??= parseCookie(this.#req.headers.cookie ?? '')) }
}

/**
 * `affinity({ balancer } | { upstreams, strategy, … }, { logger })` → a request
 * listener for http.createServer, with `.upgrade` for the server's 'upgrade' event
 * and `.close()`. Everything under the server is proxied.
 */
export function affinity (opts, { logger } = {}) {
  adapterOptions('node-http example', opts, [])
  const mount = new Mount(opts)
  if (logger !== undefined) mount.logTo(logger)
  const handle = (req, res) => {
    const decided = (choice) => {
      if (logger !== undefined) logChoice(logger, choice)
      mount.proxy(choice, req, res, { path: req.url ?? '/' })
    }
    const choice = mount.balancer.choose(new NodeRouteRequest(req))
    if (choice instanceof Promise) choice.then(decided, () => { res.statusCode = 500; res.end() })
    else decided(choice)
  }
  handle.balancer = mount.balancer
  // Upgrades are routed like requests: a guard in `handle` could answer them with a 401.
  handle.upgrade = (req, socket, head) => { if (pendingUpgrade(req) === undefined) routeUpgrade(req, socket, head, handle) }
  handle.close = () => mount.close()
  return handle
}

