import http, { type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http'

/** What createServer needs of an Express app (4 or 5): the request listener and its prototypes. */
export type ExpressAppWithPrototypes = ((req: IncomingMessage, res: ServerResponse) => void) & { request: object, response: object }

type Init = (this: unknown, ...args: unknown[]) => void

/** Node's IncomingMessage and ServerResponse are ES5 constructors (callable with a `this`) in the Node lines supported. */
const callable = (C: unknown): boolean => typeof C === 'function' && !/^class\b/.test(Function.prototype.toString.call(C))

/**
 * An http.Server for an Express app (instead of `app.listen()` / `http.createServer(app)`)
 * whose requests and responses are created with the app's own prototypes, `app.request`
 * and `app.response`. Express sets them on every request with Object.setPrototypeOf
 * (Express 5 app.handle, Express 4 init middleware); V8 makes every later property access
 * on an object whose prototype was changed slower, in Node's http code, the forwarder and
 * undici's callbacks alike (nodejs/node#37457, expressjs/express#5998). On objects born
 * with those prototypes the call changes nothing. Measured on a busy 2-core machine,
 * `node bench/proxy.js --only node-hello,floor,express-hello*,express-roundRobin*,express-stickyCookie*`
 * (each door ÷ its `+createServer` twin): Express hello world 121 → 39 µs of CPU per request,
 * Affinity Express roundRobin 232 → 118, stickyCookie 291 → 104.
 *
 * Only the app given benefits: a sub-app mounted inside it still swaps the prototypes of
 * the requests it handles. On a Node whose constructors are classes, this falls back to a
 * plain `http.createServer(options, app)`.
 */
export function createServer (app: ExpressAppWithPrototypes, options: ServerOptions = {}): Server {
  if (!callable(http.IncomingMessage) || !callable(http.ServerResponse)) return http.createServer(options, app)
  const initRequest = http.IncomingMessage as unknown as Init
  const initResponse = http.ServerResponse as unknown as Init
  function AppRequest (this: unknown, socket: unknown): void { initRequest.call(this, socket) }
  AppRequest.prototype = app.request
  function AppResponse (this: unknown, req: unknown, opts: unknown): void { initResponse.call(this, req, opts) }
  AppResponse.prototype = app.response
  return http.createServer({
    ...options,
    IncomingMessage: AppRequest as unknown as typeof http.IncomingMessage,
    ServerResponse: AppResponse as unknown as typeof http.ServerResponse,
  }, app)
}
