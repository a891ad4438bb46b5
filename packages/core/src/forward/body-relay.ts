import { Readable } from 'node:stream'
import { ClientGoneError } from './context.js'

function ignore (): void {}

/**
 * Hands a client's request body to undici without handing over the client stream.
 * undici destroys its body stream when a request fails; if that were the client's
 * IncomingMessage, a refused connection would lose the body and the retry on
 * another upstream could not happen. The relay attaches to the source only when
 * undici first reads (i.e. on a connected socket), and its destruction leaves the
 * source alone, so until `started` the same source can be relayed again.
 */
export class BodyRelay extends Readable {
  readonly #source: Readable
  #started = false

  constructor (source: Readable) {
    super()
    this.#source = source
    // A relay destroyed with an error emits it a tick later. undici listens while the
    // request runs, and stops once the request has failed (Request.onFinally): a
    // client that left before the connection was up fails the request in the same
    // tick its relay is destroyed, and the error would reach nobody — an uncaught
    // exception that ends the process. The request's own failure carries the cause.
    this.on('error', ignore)
  }

  get started (): boolean {
    return this.#started
  }

  override _read (): void {
    if (!this.#started) {
      this.#started = true
      const src = this.#source
      src.on('data', this.#onData)
      src.once('end', this.#onEnd)
      src.once('error', this.#onError)
      src.once('aborted', this.#onAborted)
      // The client left before the upstream asked for its body: nothing will come. An
      // HTTP/2 request whose stream was reset has *ended* too (node:http2's compat
      // layer pushes null on close), so 'aborted' is checked first: a cut body must
      // never reach the upstream as a complete one. (undici first calls read(0) before
      // it listens for errors: fail on the next tick.)
      if ((src as { aborted?: boolean }).aborted === true) process.nextTick(this.#onAborted)
      else if (src.readableEnded) this.push(null)
      else if (src.destroyed) process.nextTick(this.#onAborted)
    }
    this.#source.resume()
  }

  override _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    this.#detach()
    // Once read from, the body cannot be relayed again (the request is not replayed). If
    // the relay paused the source (backpressure) and the upstream then failed or answered
    // early, nobody would ever read the rest: the client's upload would stall on its
    // connection. Let the rest flow and be discarded, as Node does for a body no handler reads.
    if (this.#started && !this.#source.readableEnded) this.#source.resume()
    callback(err)
  }

  #onData = (chunk: Buffer): void => {
    if (!this.push(chunk)) this.#source.pause()
  }

  #onEnd = (): void => {
    this.#detach()
    this.push(null)
  }

  // Either way the client's body ended early: the client, not the upstream, stopped.
  #onError = (err: Error): void => {
    this.destroy(new ClientGoneError('the client request body failed', { cause: err }))
  }

  #onAborted = (): void => {
    this.destroy(new ClientGoneError('client aborted the request body'))
  }

  #detach (): void {
    const src = this.#source
    src.off('data', this.#onData)
    src.off('end', this.#onEnd)
    src.off('error', this.#onError)
    src.off('aborted', this.#onAborted)
  }
}
