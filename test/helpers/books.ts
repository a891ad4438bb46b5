/**
 * Waiting for a balancer's books to balance after client traffic, on conditions:
 * first the front server has seen every client connection close (so every request
 * it parsed has begun and every abort has been seen), then nothing is in flight.
 * The deadlines only turn a leak into a clear failure; nothing waits on them.
 */
import type { Balancer } from '@affinity/core'
import { delay } from './http.js'
import { expect } from './property.js'
import type { FrontConnections } from './raw-http.js'

export async function settle (b: Balancer, conns: FrontConnections, ms = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>(resolve => { timer = setTimeout(() => resolve(false), ms) })
  const idle = await Promise.race([conns.idle().then(() => true), late])
  expect(idle, `the front server still holds ${conns.open} client connection(s) ${ms} ms after the exchange`)
  clearTimeout(timer)
  const end = Date.now() + ms
  while (b.list().some(u => u.inFlight !== 0)) {
    expect(Date.now() < end, 'requests are still in flight long after every client connection closed', b.list())
    await delay(5)
  }
}
