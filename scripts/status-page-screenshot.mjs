#!/usr/bin/env node
// Regenerates docs/status-page.png, the status page screenshot in docs/observability.md:
//   npm run build && node scripts/status-page-screenshot.mjs [--seconds 60] [--out docs/status-page.png]
// Three shop upstreams behind a Fastify app with the status page on, sticky users
// arriving and browsing at a rate that rises and falls, one upstream drained and
// another failing its health checks for a while; then headless Chromium (Debian's
// `chromium` package, never a downloaded browser) opens the page and screenshots it.
import { existsSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import http from 'node:http'
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import { chromium } from 'playwright-core'
import affinity from '@affinity/fastify'
import { createBalancer, stickyCookie } from '@affinity/core'

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, out: { type: 'string', default: 'docs/status-page.png' } } })
const seconds = Number(args.seconds)
const CHROMIUM = '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) {
  console.error(`${CHROMIUM} not found: install Debian's chromium (apt-get install -y --no-install-recommends chromium)`)
  process.exit(1)
}
const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

// Upstreams: a few ms of work per request; /health answers what `healthy` says.
const upstreams = await Promise.all([1, 2, 3].map(i => new Promise(resolve => {
  const up = { id: `shop-${i}`, healthy: true }
  up.server = http.createServer((req, res) => {
    if (req.url === '/health') { res.writeHead(up.healthy ? 200 : 503).end(); return }
    if (req.url.startsWith('/missing')) { res.writeHead(404).end(); return }
    setTimeout(() => res.end(JSON.stringify({ served: up.id })), 3 + Math.random() * 20)
  }).listen(0, '127.0.0.1', () => { up.url = `http://127.0.0.1:${up.server.address().port}`; resolve(up) })
})))

const balancer = createBalancer({
  name: 'shop',
  upstreams: upstreams.map(u => ({ url: u.url, id: u.id })),
  strategy: stickyCookie({ secret: 'screenshot-secret-0123456789abcdefghijklmnop' }),
  health: { path: '/health', intervalMs: 2000, fall: 2, rise: 2 },
})
const app = Fastify()
await app.register(affinity, { prefix: '/api', balancer, statusPage: { intervalMs: 1000, windowMs: seconds * 1000 } })
await app.listen({ port: 0, host: '127.0.0.1' })
const origin = `http://127.0.0.1:${app.server.address().port}`
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })

/** One request as a browser with a cookie jar would send it. */
function visit (user, path = '/cart') {
  return new Promise(resolve => {
    const req = http.get(`${origin}/api${path}`, { agent, headers: user.cookie ? { cookie: user.cookie } : {} }, res => {
      const set = res.headers['set-cookie']?.find(c => c.startsWith('affinity='))
      if (set) user.cookie = set.split(';')[0]
      res.resume().on('end', resolve)
    })
    req.on('error', resolve)
  })
}

// Traffic: users arrive over the run; the request rate follows a slow wave. It
// goes on while the screenshot is taken, so the page shows live figures.
const users = []
const started = Date.now()
let drained = false
let unhealthy = false
let stop = false
async function traffic () {
  while (!stop) {
    const t = Math.min(1, (Date.now() - started) / (seconds * 1000))
    if (users.length < 30 + t * 90) users.push({ cookie: undefined })
    if (!drained && t > 0.35) { drained = true; void balancer.drain('shop-3') }
    if (!unhealthy && t > 0.55) { unhealthy = true; upstreams[1].healthy = false }
    if (unhealthy && upstreams[1].healthy === false && t > 0.7) upstreams[1].healthy = true
    const rate = 30 + 25 * Math.sin(t * Math.PI * 3) + 15 * t
    const batch = Math.max(1, Math.round(rate / 10))
    await Promise.all(Array.from({ length: batch }, () => {
      const user = users[Math.floor(Math.random() * users.length)]
      return visit(user, Math.random() < 0.03 ? '/missing' : '/cart')
    }))
    await sleep(100)
  }
}
console.log(`running for ${seconds} s…`)
const running = traffic()
await sleep(seconds * 1000)

// playwright-core starts Chromium with a new empty profile of its own (its --user-data-dir).
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
})
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  await page.goto(`${origin}/api/affinity/status`)
  await page.waitForFunction(() => Number(document.documentElement.dataset.refreshes) >= 1)
  await page.screenshot({ path: args.out, fullPage: true })
} finally {
  await browser.close()
  stop = true
  await running
}
console.log(`${args.out}: ${((await stat(args.out)).size / 1024).toFixed(0)} KiB`)
agent.destroy()
await app.close()
await balancer.close()
await Promise.all(upstreams.map(u => new Promise(resolve => u.server.close(resolve))))
