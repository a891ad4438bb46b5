import { EventEmitter, once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A real upstream on 127.0.0.1:0 that holds every request under /hold until the
 * test releases it (oldest first), and answers anything else at once with its
 * name. It records arrivals in order and the most requests it ever held at once,
 * as the server itself counts them: what the overload tests compare with the
 * limits. Waits are on its 'arrival' event, never on time.
 */
export class HeldUpstream extends EventEmitter {
  readonly name: string
  url = ''
  /** Request targets in the order they arrived. */
  readonly arrived: string[] = []
  /** Requests in progress now (held or being answered), and the most ever at once. */
  concurrent = 0
  maxConcurrent = 0
  readonly #held: http.ServerResponse[] = []
  readonly #server: http.Server

  constructor (name: string) {
    super()
    this.name = name
    this.#server = http.createServer((req, res) => {
      this.concurrent++
      this.maxConcurrent = Math.max(this.maxConcurrent, this.concurrent)
      res.once('close', () => { this.concurrent-- })
      this.arrived.push(req.url ?? '')
      req.resume()
      if ((req.url ?? '').startsWith('/hold')) this.#held.push(res)
      else res.end(JSON.stringify({ name: this.name, url: req.url }))
      this.emit('arrival', req.url)
    })
  }

  async start (): Promise<this> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
    return this
  }

  /** Requests held now. */
  get held (): number {
    return this.#held.length
  }

  /** Answers the `n` oldest held requests. */
  release (n = 1): void {
    for (const res of this.#held.splice(0, n)) res.end(JSON.stringify({ name: this.name }))
  }

  /** Resolves once `n` requests have arrived in all. */
  async arrivals (n: number): Promise<void> {
    while (this.arrived.length < n) await once(this, 'arrival')
  }

  close (): Promise<void> {
    this.release(this.#held.length)
    return new Promise(resolve => { this.#server.closeAllConnections(); this.#server.close(() => resolve()) })
  }
}

export async function startHeld (names: readonly string[]): Promise<HeldUpstream[]> {
  return Promise.all(names.map(n => new HeldUpstream(n).start()))
}
