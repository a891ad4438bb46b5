import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'

type Done = (err: Error | null, body?: unknown) => void

/** Hands the request stream on untouched: the body is forwarded as it arrives. */
function passThrough (_request: FastifyRequest, payload: unknown, done: Done): void {
  done(null, payload)
}

/**
 * Installs the body parsers of the plugin's context and returns how to find the
 * bytes to forward.
 *
 * Bodies are proxied byte for byte: every parser the context inherited is dropped
 * (Fastify's own text/plain parser would otherwise buffer text into a string, and
 * an app's form or multipart parser would consume the body), and every media type
 * goes through a pass-through parser — what @fastify/http-proxy installs, done here
 * (it is told `proxyPayloads: false`) so that `preValidation` changes nothing about it.
 *
 * With `preValidation`, @fastify/http-proxy installs no parser at all: Fastify's own
 * JSON and text parsers run, so the hook can read `request.body`, and reply-from
 * sends the *parsed* body on, re-serialised (other media types get a 415). Here the
 * hook reads the same values — Fastify's own JSON parser (with the app's
 * prototype-poisoning settings) and text as a string, under `bodyLimit` — while the
 * upstream still gets the bytes the client sent, and other media types stream.
 * The raw bytes are kept in a WeakMap only for such requests.
 */
export function installBodyParsers (fastify: FastifyInstance, parseForValidation: boolean): (request: FastifyRequest) => Readable | Buffer | undefined {
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', passThrough)
  if (!parseForValidation) return streamOf
  const raw = new WeakMap<FastifyRequest, Buffer>()
  const { onProtoPoisoning, onConstructorPoisoning } = fastify.initialConfig
  const json = fastify.getDefaultJsonParser(onProtoPoisoning ?? 'error', onConstructorPoisoning ?? 'error')
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    raw.set(request, body as Buffer)
    json(request, (body as Buffer).toString('utf8'), done)
  })
  fastify.addContentTypeParser('text/plain', { parseAs: 'buffer' }, (request, body, done) => {
    raw.set(request, body as Buffer)
    done(null, (body as Buffer).toString('utf8'))
  })
  return request => streamOf(request) ?? raw.get(request)
}

/** The body stream the pass-through parser produced (a preParsing hook may have wrapped it), if any. */
function streamOf (request: FastifyRequest): Readable | undefined {
  const body = request.body
  return body instanceof Readable ? body : undefined
}
