'use strict'
// @fastify/http-proxy's option names over @affinity/fastify: what @fastify/http-proxy's
// own test files load in its place (scripts/http-proxy-suite.mjs). As thin as the
// migration table (docs/migrating.md) allows, and no thinner:
// - `upstream: url` → `upstreams: [origin]`; the URL's path becomes `rewritePrefix`
//   when none is given, which is what @fastify/http-proxy makes of it;
// - `replyOptions.rewriteHeaders` / `.rewriteRequestHeaders` → the top-level options of
//   the same names (same signatures);
// - `prefix` is not passed on: Fastify applies it to this plugin's context already.
// Everything else goes to the plugin as it is, so an option it refuses fails the
// registration with AFFINITY_ERR_UNSUPPORTED_OPTION (those tests are skipped, with reasons).
const { affinity } = require('@affinity/fastify')

function affinityOptions (opts) {
  const out = {}
  for (const [key, value] of Object.entries(opts ?? {})) if (value !== undefined && key !== 'prefix') out[key] = value
  if (typeof out.upstream === 'string' && out.upstream !== '') {
    const url = new URL(out.upstream)
    out.upstreams = [url.origin]
    if (out.rewritePrefix === undefined && url.pathname !== '/') out.rewritePrefix = url.pathname
    delete out.upstream
  }
  if (out.replyOptions !== null && typeof out.replyOptions === 'object') {
    const { rewriteHeaders, rewriteRequestHeaders, ...rest } = out.replyOptions
    if (rewriteHeaders !== undefined) out.rewriteHeaders = rewriteHeaders
    if (rewriteRequestHeaders !== undefined) out.rewriteRequestHeaders = rewriteRequestHeaders
    if (Object.keys(rest).length === 0) delete out.replyOptions
    else out.replyOptions = rest
  }
  return out
}

function fastifyHttpProxy (fastify, opts, done) {
  fastify.register(affinity, affinityOptions(opts))
  done()
}

module.exports = fastifyHttpProxy
module.exports.default = fastifyHttpProxy
module.exports.fastifyHttpProxy = fastifyHttpProxy
module.exports.affinityOptions = affinityOptions
