'use strict'
// The tests of @fastify/http-proxy 11.6.3's own suite that are not run against
// @affinity/fastify, each with its reason: they test @fastify/reply-from or
// @fastify/http-proxy internals, or an option the plugin deliberately refuses
// (AFFINITY_ERR_UNSUPPORTED_OPTION). docs/migrating.md lists the same tests (a test
// checks that it does). Keys: 'file' (the whole file) or 'file › test name'.

const GET_UPSTREAM = 'replyOptions.getUpstream: the balancer picks the upstream (refused, AFFINITY_ERR_UNSUPPORTED_OPTION)'
const FROM_PARAMETERS = 'reply.from / reply.fromParameters: @fastify/reply-from\'s API, which Affinity does not forward through'
const WS_HOOKS = 'wsHooks: WebSocket frames are relayed as bytes through a tunnel, not as messages (refused)'
const WS_CLIENT = 'wsClientOptions: the tunnel forwards the client\'s headers and query as sent; use rewriteRequestHeaders(request, headers), which applies to upgrades too (refused)'
// The same cases, with the listener attached before the handshake ends, pass in
// test/fastify-websocket-paths.test.ts.
const GREETING_RACE = 'a race in the test, not a proxy difference: it waits for `open`, then listens for the first message, which the backend sends on connection; a tunnel relays it in the same TCP read as the 101, so ws emits it before the test listens (as when connecting to the backend directly). @fastify/http-proxy hides the race by answering the handshake itself before it connects upstream. The same cases pass in test/fastify-websocket-paths.test.ts'
const WS_UPSTREAM = 'wsUpstream: WebSocket upgrades go to the same upstreams as HTTP (refused)'

const SKIPS = {
  'options.js': '@fastify/http-proxy\'s own option validator (src/options.js), an internal of that package',
  'utils.js': '@fastify/http-proxy\'s own helpers (utils.js), internals of that package',
  'ws-reconnect.js': 'wsReconnect: a tunnel whose upstream goes away is closed; the client reconnects and the balancer picks again (refused)',
  'ws-prefix-rewrite-core.js': '`http: true` (reply-from\'s node:http transport): Affinity has one transport, an undici Pool per upstream (refused); the same four cases without it are those of ws-prefix-rewrite.js',
  'ws-prefix-rewrite.js › no prefix to `/`': GREETING_RACE,
  'ws-prefix-rewrite.js › `/pub/` to `/`': GREETING_RACE,
  'ws-prefix-rewrite.js › `/pub/` to `/public/`': GREETING_RACE,
  'ws-prefix-rewrite.js › wrapped `/pub/` to `/public/`': GREETING_RACE,
  'ws-prefix-rewrite.js › parameterized Unicode prefix': GREETING_RACE,
  'ws-prefix-rewrite.js › percent-encoded backslashes remain path data': GREETING_RACE,
  'websocket-querystring.js': WS_CLIENT,
  'websocket-pathname.js › keep proxy websocket pathname': WS_UPSTREAM,

  'test.js › dynamic upstream for basic proxy': GET_UPSTREAM,
  'test.js › dynamic upstream for redirects passthrough': GET_UPSTREAM,
  'test.js › dynamic upstream for prefixed proxy': GET_UPSTREAM,
  'test.js › dynamic upstream for posting stuff': GET_UPSTREAM,
  'test.js › no upstream will throw': 'the error differs: Affinity throws AFFINITY_ERR_NO_UPSTREAMS (\'at least one upstream is required\'), not \'upstream must be specified\'',
  'test.js › skip proxying the incoming payload': 'proxyPayloads: bodies are forwarded byte for byte; preValidation sees JSON and text bodies parsed (refused)',
  'test.js › custom handler can handle response': 'handler: the handler is the proxy (refused)',
  'test.js › custom handler can delegate to reply.from()': 'handler: the handler is the proxy (refused)',
  'test.js › passes onResponse option to reply.from() calls': 'replyOptions.onResponse: responses stream untouched; headers change with rewriteHeaders (refused)',
  'test.js › undici POST': '`undici: true` (reply-from\'s transport choice): Affinity always forwards through undici (refused)',
  'test.js › proxy request timeout': '`http.requestOptions.timeout` (reply-from\'s node:http transport): use timeoutMs, tested in test/adapters/proxy-options.ts (refused)',
  'test.js › check against traversal attempts': FROM_PARAMETERS,
  'test.js › manual from call via fromParameters': FROM_PARAMETERS,
  'test.js › fromParameters rewrites encoded multibyte prefixes without decoding the suffix': FROM_PARAMETERS,
  'test.js › fromParameters should preserve query params with non-parameterized prefix': FROM_PARAMETERS,
  'test.js › fromParameters should only rewrite a leading non-parameterized prefix': FROM_PARAMETERS,

  'http-prefix-rewrite.js › HTTP paths are validated against a dynamic upstream once per request': GET_UPSTREAM,
  'http-prefix-rewrite.js › reply.fromParameters cannot escape rewritePrefix': FROM_PARAMETERS,
  'http-prefix-rewrite.js › HTTP request with a falsy dynamic upstream falls back to the default validation host': GET_UPSTREAM,

  'websocket.js › getUpstream': GET_UPSTREAM,
  'websocket.js › getUpstream with unset wsUpstream': GET_UPSTREAM,
  'websocket.js › Proxy websocket with custom upstream url': WS_UPSTREAM,
  'websocket.js › multiple websocket upstreams with distinct server options': 'wsServerOptions: upgrades are tunnelled, not terminated by a ws server (refused); guard them with onRequest or preHandler',
  'websocket.js › websocket proxy with rewriteRequestHeaders': WS_CLIENT,
  'websocket.js › websocket proxy custom headers': WS_CLIENT,
  'websocket.js › should call onIncomingMessage and onOutgoingMessage hooks': WS_HOOKS,
  'websocket.js › should handle throwing an error in onIncomingMessage and onOutgoingMessage hooks': WS_HOOKS,
  'websocket.js › should call onConnect hook': WS_HOOKS,
  'websocket.js › should handle throwing an error in onConnect hook': WS_HOOKS,
  'websocket.js › should call onDisconnect hook': WS_HOOKS,
  'websocket.js › should handle throwing an error in onDisconnect hook': WS_HOOKS,
  'websocket.js › should call onDisconnect hook once per connection': WS_HOOKS,
}

/** The reason a test is skipped, or undefined when it runs. */
function skipReason (file, name) {
  return SKIPS[file] ?? SKIPS[`${file} › ${name}`]
}

module.exports = { SKIPS, skipReason }
