import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ThrashingOptions {
  /** Requests it serves at full speed at once. */
  capacity: number
  /** Work per request, ms at full speed: drawn uniformly from [workMs / 2, 3 × workMs / 2]. */
  workMs: number
  seed: number
}

/**
 * A server that serves `capacity` requests at once at full speed and slows down
 * sharply beyond, as a real one does (threads contending, GC, cache misses): every
 * request in progress advances at (capacity / concurrency)² of full speed, so the
 * server's total throughput falls as concurrency grows past capacity (capacity² /
 * concurrency) — past that point more load means less work done, the collapse a
 * failover storm provokes. Progress is measured in elapsed time per tick, so timer
 * jitter changes nothing. Its own counts (concurrency now and the most ever) are
 * what the storm compares with maxInFlight: sampled from the upstream side.
 */
export class ThrashingUpstream {
  readonly name: string
  url = ''
  concurrent = 0
  maxConcurrent = 0
  served = 0
  dead = false
  readonly #opts: ThrashingOptions
  readonly #server: http.Server
  readonly #active = new Set<{ left: number, res: http.ServerResponse }>()
  #timer: NodeJS.Timeout | undefined
  #last = 0
  #rng: number
  /** Called on each arrival (the storm's trigger reads the upstream's own state). */
  onArrival: (() => void) | undefined

  constructor (name: string, opts: ThrashingOptions) {
    this.name = name
    this.#opts = opts
    this.#rng = opts.seed
    this.#server = http.createServer((req, res) => {
      req.resume()
      const job = { left: opts.workMs * (0.5 + this.#random()), res }
      this.#active.add(job)
      this.concurrent = this.#active.size
      if (this.concurrent > this.maxConcurrent) this.maxConcurrent = this.concurrent
      res.once('close', () => { if (this.#active.delete(job)) this.concurrent = this.#active.size })
      if (this.#timer === undefined) {
        this.#last = performance.now()
        this.#timer = setInterval(() => this.#tick(), 2)
      }
      this.onArrival?.()
    })
  }

  async start (): Promise<this> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
    return this
  }

  /** Dies at once: every connection reset, the port closed. */
  kill (): void {
    this.dead = true
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#active.clear()
    this.concurrent = 0
    this.#server.close()
    this.#server.closeAllConnections()
  }

  close (): Promise<void> {
    if (this.dead) return Promise.resolve()
    this.kill()
    return Promise.resolve()
  }

  #tick (): void {
    const now = performance.now()
    const dt = now - this.#last
    this.#last = now
    const n = this.#active.size
    const speed = n <= this.#opts.capacity ? 1 : (this.#opts.capacity / n) ** 2
    for (const job of this.#active) {
      job.left -= dt * speed
      if (job.left > 0) continue
      this.#active.delete(job)
      this.served++
      job.res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': this.name })
      job.res.end(`{"name":"${this.name}"}`)
    }
    this.concurrent = this.#active.size
    if (this.#active.size === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  /** mulberry32, in [0, 1). */
  #random (): number {
    let a = this.#rng = (this.#rng + 0x6D2B79F5) | 0
    a = Math.imul(a ^ (a >>> 15), a | 1)
    a ^= a + Math.imul(a ^ (a >>> 7), a | 61)
    return ((a ^ (a >>> 14)) >>> 0) / 4294967296
  }
}
