/**
 * A browser EventSource through the proxy (issue 13, "Done when"): the upstream
 * flushes its response head at once and its first event later, and the browser's
 * `open` must not wait for that event. Headless Chromium (see helpers/chromium.ts)
 * loads a page through each adapter — Fastify, Express, and Fastify on
 * `http2: true` over TLS (Chromium then speaks h2) — whose EventSource reports
 * `open` and its first message to the test through page.exposeFunction.
 *
 * 1. Deterministic: the upstream sends its first event only after the page has
 *    reported `open`. A proxy that holds the head until the first body byte
 *    deadlocks here, and the test fails.
 * 2. The done-when scenario itself: head at t=0, first event at t=2 s (a real 2 s
 *    timer in the upstream: it is the scenario, not a synchronisation).
 * The open delays are printed as diagnostics; timing is asserted only loosely
 * (open before 2 s), never as a tight bound.
 */
import { EventEmitter } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { createBalancer, roundRobin, type Balancer } from '@affinity/core'
import { expressHarness, fastifyHarness, type AdapterHarness } from './adapters/harness.js'
import { closeChromium, launchChromium, missing, required } from './helpers/chromium.js'
import { startH2Front } from './helpers/h2.js'

t.teardown(closeChromium)

/** The page opens EventSource(`?src=`, default 'events') relative to itself and reports to the test. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>sse</title>
<script>
const es = new EventSource(new URLSearchParams(location.search).get('src') || 'events')
const now = () => performance.timeOrigin + performance.now()
es.onopen = () => { reportOpen(now()) }
es.onmessage = (e) => { es.close(); reportMessage(e.data, now()) }
es.onerror = () => { reportError(String(es.readyState)) }
</script>`

interface SseUpstream { url: string, events: EventEmitter, close (): Promise<void> }

/**
 * /page: the page. /events: a text/event-stream head flushed at once, then
 * emit('head', res, at): the test writes the events. /events-2s: the head at once,
 * the first event 2 s later. `at` is when the head was flushed, in epoch milliseconds
 * with sub-millisecond precision (performance.timeOrigin + now()), as the page reports its
 * own moments: both clocks are this machine's, so no page → test messaging delay is counted.
 */
async function startSseUpstream (): Promise<SseUpstream> {
  const events = new EventEmitter()
  const server = http.createServer((req, res) => {
    if (req.url === '/page' || req.url?.startsWith('/page?')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE)
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
    res.flushHeaders()
    const at = performance.timeOrigin + performance.now()
    if (req.url === '/events-2s') {
      const timer = setTimeout(() => res.write('data: first\n\n'), 2000)
      res.once('close', () => clearTimeout(timer))
    }
    events.emit('head', res, at)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    events,
    close: () => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

interface Front { name: string, start (t: Test, balancer: Balancer): Promise<string> }

const fronts: Front[] = [
  ...[fastifyHarness(), expressHarness()].map((h: AdapterHarness): Front => ({
    name: h.name,
    start: async (t, balancer) => (await h.start(t, { source: { balancer } })).base,
  })),
  { name: 'fastify http2 (TLS)', start: async (t, balancer) => (await startH2Front(t, 'tls', { balancer })).base },
]

/** Moments in epoch milliseconds (see startSseUpstream); openAt and messageAt as the page saw them. */
interface Run { headAt: number, openAt: number, messageAt: number, message: string, protocol: string }

/** Loads the page through `base` and resolves when its EventSource got its first message; `onOpen` runs when it reports open. */
async function eventSourceRun (t: Test, up: SseUpstream, base: string, src: string, onOpen: (head: { res: http.ServerResponse }) => void): Promise<Run> {
  const context = await (await launchChromium()).newContext({ ignoreHTTPSErrors: true }) // the test certificate
  t.teardown(() => context.close())
  const page = await context.newPage()
  let head: { res: http.ServerResponse, at: number } | undefined
  up.events.once('head', (res: http.ServerResponse, at: number) => { head = { res, at } })
  let openAt = 0
  let settle: { resolve (r: Run): void, reject (e: Error): void }
  const run = new Promise<Run>((resolve, reject) => { settle = { resolve, reject } })
  // Awaited before the page loads: a binding not yet installed would be a ReferenceError in onopen.
  await page.exposeFunction('reportOpen', (at: number) => {
    openAt = at
    if (head === undefined) settle.reject(new Error('open reported before the upstream sent its head'))
    else onOpen(head)
  })
  await page.exposeFunction('reportMessage', (message: string, at: number) => {
    settle.resolve({ headAt: head!.at, openAt, messageAt: at, message, protocol: '' })
  })
  await page.exposeFunction('reportError', (state: string) => settle.reject(new Error(`EventSource error (readyState ${state}) before its first message`)))
  await page.goto(`${base}/page?src=${src}`)
  const result = await run
  result.protocol = await page.evaluate(() => String((globalThis as any).performance.getEntriesByType('navigation')[0].nextHopProtocol))
  return result
}

async function setup (t: Test, front: Front): Promise<{ up: SseUpstream, base: string }> {
  const up = await startSseUpstream()
  const balancer = createBalancer({ upstreams: [up.url], strategy: roundRobin() })
  t.teardown(async () => { await balancer.close(); await up.close() })
  return { up, base: await front.start(t, balancer) }
}

if (missing !== undefined && required) {
  t.fail(`${missing}: AFFINITY_REQUIRE_BROWSER=1 requires the browser test`)
} else {
  const skip = missing === undefined ? false : `${missing}: browser test skipped`
  for (const front of fronts) {
    // A proxy that holds the head deadlocks this case: tap's timeout ends it as a failure.
    t.test(`${front.name}: EventSource opens on the head alone; the first event is sent only after open`, { skip, timeout: 30_000 }, async t => {
      const { up, base } = await setup(t, front)
      const r = await eventSourceRun(t, up, base, 'events', ({ res }) => { res.write('data: after-open\n\n') })
      t.equal(r.message, 'after-open', 'open fired with no body byte sent, then the event arrived')
      t.ok(r.openAt - r.headAt < 2000, 'open well before 2 s')
      t.comment(`${front.name} (${r.protocol}): open ${(r.openAt - r.headAt).toFixed(1)} ms after the upstream flushed its head (as the page saw it)`)
    })
    t.test(`${front.name}: head at t=0, first event at t=2 s — open comes with the head`, { skip }, async t => {
      const { up, base } = await setup(t, front)
      const r = await eventSourceRun(t, up, base, 'events-2s', () => {})
      t.equal(r.message, 'first')
      t.ok(r.openAt < r.messageAt, 'open before the first event')
      t.ok(r.openAt - r.headAt < 2000, 'open before the event was sent')
      t.comment(`${front.name} (${r.protocol}): open at ${(r.openAt - r.headAt).toFixed(1)} ms, first event at ${(r.messageAt - r.headAt).toFixed(1)} ms after the head`)
    })
  }
}
