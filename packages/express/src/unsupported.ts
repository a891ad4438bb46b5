import type { Unsupported } from '@affinity/core/adapter'

const NONE = 'the response streams to the client as the upstream sends it; change its headers with `rewriteHeaders`'
const TRANSPORT = 'upstream connections are undici Pools the balancer owns: tune them with `pool` (undici Pool options, TLS in `pool.connect`)'

/**
 * Every option of http-proxy-middleware 3.x (its own and the http-proxy
 * ServerOptions it passes on) that the middleware does not take under that name,
 * with what to use instead. Refused with AFFINITY_ERR_UNSUPPORTED_OPTION, never ignored.
 * (`pathRewrite` and `logger` are taken as they are.)
 */
export const UNSUPPORTED: Unsupported = {
  from: 'http-proxy-middleware',
  options: {
    target: 'pass `upstreams: [url, …]` (or a `balancer`): the balancer picks the upstream of each request',
    router: 'the balancer picks the upstream of each request (`strategy`); mount one middleware per set of upstreams',
    forward: 'there is no fire-and-forget copy of requests',
    pathFilter: 'mount the middleware where it should apply: `app.use(\'/api\', lb)`, or put a route or middleware in front',
    ws: 'WebSocket upgrades: `server.on(\'upgrade\', lb.upgrade)`',
    changeOrigin: 'the upstream gets its own Host by default (changeOrigin: true); `preserveHost: true` sends the client\'s (changeOrigin: false)',
    xfwd: 'X-Forwarded-For, -Proto and -Host are always set',
    headers: 'add request headers with `rewriteRequestHeaders(req, headers)`',
    on: 'use `rewriteRequestHeaders` (proxyReq), `rewriteHeaders` (proxyRes) and `onError(req, res, err)` (error)',
    plugins: 'there is no http-proxy server inside: use `rewriteRequestHeaders`, `rewriteHeaders` and `onError`',
    ejectPlugins: 'there is no http-proxy server inside: errors are answered (JSON, or your `onError`)',
    proxyTimeout: 'use `timeoutMs` (and `idleTimeoutMs`)',
    timeout: 'use `timeoutMs` (and `idleTimeoutMs`)',
    secure: `TLS is always verified; ${TRANSPORT}`,
    agent: TRANSPORT,
    ssl: 'terminate TLS in your own https server in front of Express',
    localAddress: TRANSPORT,
    autoRewrite: 'Location and Content-Location are rewritten by default (`internalRewriteLocationHeader`): an upstream\'s own origin becomes the client\'s path under the mount',
    hostRewrite: 'Location and Content-Location are rewritten by default (`internalRewriteLocationHeader`); other rewrites: `rewriteHeaders`',
    protocolRewrite: 'Location and Content-Location are rewritten by default (`internalRewriteLocationHeader`); other rewrites: `rewriteHeaders`',
    cookieDomainRewrite: 'rewrite Set-Cookie in `rewriteHeaders`',
    cookiePathRewrite: 'rewrite Set-Cookie in `rewriteHeaders`',
    preserveHeaderKeyCase: 'header names are sent in lower case (HTTP/2 requires it; HTTP/1.1 names are case-insensitive)',
    auth: 'set Authorization in `rewriteRequestHeaders`',
    toProxy: 'upstreams are origin servers; there is no forward proxy in between',
    prependPath: 'the path of an upstream URL is always prepended',
    ignorePath: 'use `pathRewrite`',
    followRedirects: 'redirects are relayed to the client (their Location rewritten under the mount)',
    selfHandleResponse: NONE,
    buffer: 'the request body streams from the client (or from a body parser that ran before)',
    method: 'the method is forwarded as sent',
  },
}
