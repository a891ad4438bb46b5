import type { ClientHttp2Session } from 'node:http2'
import type { Test } from 'tap'
import { createBalancer, stickyCookie, type Balancer, type BalancerOptions, type OutcomeKind } from '@affinity/core'
import { h2Session, startH2Front, TLS, type FrontMode, type H2Front } from './h2.js'
import { startH2Upstream, startStreamUpstream, type StreamUpstream } from './stream-upstream.js'

export const H2_SECRET = 'h2-front-secret-0123456789abcdefghijklmnopq'

/** What the upstreams speak: HTTP/1.1 (the default pool), or HTTP/2 over TLS through `pool: { allowH2: true }`. */
export type UpstreamKind = 'h1' | 'h2'

export interface H2Fixture {
  mode: FrontMode
  kind: UpstreamKind
  ups: StreamUpstream[]
  balancer: Balancer
  front: H2Front
  session: ClientHttp2Session
}

/**
 * Two upstreams of `kind` behind a caller-owned stickyCookie balancer, a Fastify
 * `http2: true` front in `mode`, and one node:http2 client session to it; all torn
 * down with the test.
 */
export async function h2Fixture (t: Test, mode: FrontMode, kind: UpstreamKind, opts: Partial<BalancerOptions> = {}): Promise<H2Fixture> {
  const start = kind === 'h1' ? startStreamUpstream : startH2Upstream
  const ups = await Promise.all(['S1', 'S2'].map(n => start(n)))
  const balancer = createBalancer({
    upstreams: ups.map(u => ({ url: u.url, id: u.name })),
    strategy: stickyCookie({ secret: H2_SECRET }),
    ...(kind === 'h2' ? { pool: { allowH2: true, connect: { ca: TLS.cert } } } : {}),
    ...opts,
  })
  // Registered first, so run last: after the front and the client.
  t.teardown(async () => { await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  const front = await startH2Front(t, mode, { balancer })
  const session = await h2Session(t, front.url)
  return { mode, kind, ups, balancer, front, session }
}

/** The books after a case: every upstream up, nothing in flight, no failure charged. */
export function checkBooks (t: Test, balancer: Balancer, what: string): void {
  const list = balancer.list().map(u => ({ id: u.id, state: u.state, inFlight: u.inFlight, failures: u.failures }))
  t.same(list, list.map(u => ({ id: u.id, state: 'up', inFlight: 0, failures: 0 })), `books balance after ${what}`)
}

/** The next attempt outcome on `balancer` (listen before the request starts: attempts are timed only while observed). */
export function nextOutcome (balancer: Balancer): Promise<{ upstream: string, kind: OutcomeKind }> {
  return new Promise(resolve => {
    const stop = balancer.onOutcome((u, kind) => { stop(); resolve({ upstream: u.id, kind }) })
  })
}

/** The first time any of `ups` emits `event`, with its arguments and which upstream it was. */
export function onAny (ups: StreamUpstream[], event: string): Promise<{ up: StreamUpstream, args: any[] }> {
  return new Promise(resolve => {
    const listeners = ups.map(up => {
      const l = (...args: any[]): void => {
        ups.forEach((u, i) => u.events.off(event, listeners[i]!))
        resolve({ up, args })
      }
      up.events.on(event, l)
      return l
    })
  })
}
