/**
 * The status page in a real browser: headless Chromium (Debian's `chromium`
 * package, never a downloaded browser) driven by playwright-core loads the page
 * through a running balancer on each adapter, and what it shows after a refresh
 * cycle must equal balancer.stats(). Skipped with a message where /usr/bin/chromium
 * is missing, unless AFFINITY_REQUIRE_BROWSER=1 (CI sets it), which makes that a failure.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { BalancerStats } from '@affinity/core'
import { expressHarness, fastifyHarness, type AdapterHarness } from './adapters/harness.js'
import { until } from './helpers/http.js'
import { HOSTILE_IDS, stickyTraffic, stickyTrio, viewOf } from './helpers/status-page.js'

const CHROMIUM = '/usr/bin/chromium'
/** As /work's machines run it: no sandbox as root, and no background calls to Google's hosts. */
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const ROUTE = '/affinity/status'

const missing = existsSync(CHROMIUM) ? undefined : `headless Chromium not found at ${CHROMIUM} (apt-get install -y --no-install-recommends chromium)`
const required = process.env.AFFINITY_REQUIRE_BROWSER === '1'

let browser: Browser | undefined
async function launch (): Promise<Browser> {
  // playwright-core gives each launch a new empty profile (its own --user-data-dir).
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
  return browser
}
t.teardown(async () => { await browser?.close() })

let shots: string | undefined
async function screenshotPath (name: string): Promise<string> {
  shots ??= await mkdtemp(join(tmpdir(), 'affinity-status-page-'))
  return join(shots, `${name}.png`)
}

/** A page that records what must not happen: console errors, uncaught errors, dialogs, requests leaving its origin. */
async function openPage (t: Test, url: string): Promise<{ page: Page, errors: string[], outside: string[], dialogs: string[] }> {
  const context = await (await launch()).newContext({ viewport: { width: 1280, height: 800 } })
  t.teardown(() => context.close())
  const page = await context.newPage()
  const errors: string[] = []
  const outside: string[] = []
  const dialogs: string[] = []
  const origin = new URL(url).origin
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()) })
  page.on('pageerror', e => errors.push(e.message))
  page.on('dialog', d => { dialogs.push(d.message()); void d.dismiss() })
  page.on('request', r => { if (new URL(r.url()).origin !== origin) outside.push(r.url()) })
  await page.goto(url)
  return { page, errors, outside, dialogs }
}

/** Waits until the page has re-rendered from a JSON view read after `since` and the chart has its bands. */
async function refreshedAfter (page: Page, since: number): Promise<void> {
  // Functions, not strings: the page's CSP forbids eval, and Playwright evaluates strings with it.
  await page.waitForFunction((since: number) => {
    const doc = (globalThis as any).document
    const paths: any[] = [...doc.querySelectorAll('svg.chart path[data-series]')]
    return Number(doc.documentElement.dataset.at) > since && Number(doc.documentElement.dataset.refreshes) >= 1 &&
      paths.length > 0 && paths.every(p => p.getAttribute('d') !== '')
  }, since, { timeout: 10_000 })
}

/** What `data-value` each element must hold, from stats() (see status-html.ts for the formats). */
function expectedValue (stats: BalancerStats, upstream: string | null, field: string): string | undefined {
  if (upstream === null) {
    if (field === 'panic') return String(stats.panic)
    if (field.startsWith('picks.')) return String(stats.picks[field.slice('picks.'.length)])
    const sums: Record<string, number> = {
      'totals.upstreams': stats.upstreams.length,
      'totals.up': stats.upstreams.filter(u => u.state === 'up').length,
      'totals.inFlight': stats.upstreams.reduce((n, u) => n + u.inFlight, 0),
      'totals.websockets': stats.upstreams.reduce((n, u) => n + u.websockets, 0),
      'totals.requests': stats.upstreams.reduce((n, u) => n + u.requests, 0),
      'totals.boundUsers': stats.upstreams.reduce((n, u) => n + (u.boundUsers ?? 0), 0),
    }
    return sums[field] === undefined ? undefined : String(sums[field])
  }
  const u = viewOf(stats).find(x => x.id === upstream)
  if (u === undefined) return 'no such upstream'
  if (field === 'health.last') {
    const last = u.health.recent.at(-1)
    return last === undefined ? '' : last.ok ? 'pass' : 'fail'
  }
  let v: unknown = u
  for (const key of field.split('.')) v = (v as Record<string, unknown>)[key]
  return v === null ? '' : String(v)
}

async function statusPageInBrowser (t: Test, h: AdapterHarness): Promise<void> {
  // Active checks every minute: the first runs at once, so the health columns hold still.
  const { balancer } = await stickyTrio(t, undefined, { health: { path: '/health', intervalMs: 60_000 } })
  const app = await h.start(t, { source: { balancer }, statusPage: { intervalMs: 250 } })
  await until(() => balancer.stats().upstreams.every(u => u.health.checks === 1), 3000, 'the first health checks')
  await stickyTraffic(app.base, balancer, 'S3')
  const stopped = Date.now()

  const { page, errors, outside, dialogs } = await openPage(t, `${app.base}${ROUTE}`)
  await refreshedAfter(page, stopped)
  const cells: Array<[string | null, string, string | null]> = await page.$$eval('[data-field]', (els: any[]) =>
    els.map(e => [e.getAttribute('data-upstream'), e.getAttribute('data-field'), e.getAttribute('data-value')]))
  const stats = balancer.stats()
  const perUpstream = cells.filter(([u]) => u !== null)
  t.ok(perUpstream.length >= 3 * 20, `figures per upstream read off the page (${perUpstream.length})`)
  t.same(new Set(perUpstream.map(([u]) => u)), new Set(['S1', 'S2', 'S3']), 'for each upstream')
  const wrong = cells
    .map(([u, field, value]) => ({ u, field, value, expected: expectedValue(stats, u, field) }))
    .filter(c => c.expected !== undefined && c.value !== c.expected)
  t.same(wrong, [], 'every figure on the page equals balancer.stats()')
  t.ok(stats.upstreams.reduce((n, u) => n + (u.boundUsers ?? 0), 0) > 0, 'with users bound')
  t.equal(await page.textContent('[data-upstream="S3"][data-field="state"]'), 'draining', 'the drained upstream shows it')
  t.match(await page.getAttribute('[data-upstream="S3"][data-field="state"]', 'class'), /\bdraining\b/, 'coloured by its state class')
  t.match(await page.textContent('table.changes tbody'), /S3\s*up → draining\s*draining/, 'the drain among the recent state changes')

  const series: Array<[string | null, string | null]> = await page.$$eval('svg.chart path[data-series]', (els: any[]) =>
    els.map(e => [e.getAttribute('data-upstream'), e.getAttribute('d')]))
  t.same(series.map(([id]) => id), ['S1', 'S2', 'S3'], 'the chart has one series per upstream')
  t.ok(series.every(([, d]) => d !== null && d.startsWith('M')), 'each drawn')

  const file = await screenshotPath(h.name)
  await page.screenshot({ path: file, fullPage: true })
  t.ok((await stat(file)).size > 10_000, 'screenshot saved')
  t.comment(`screenshot: ${file}`)

  t.same(errors, [], 'no console errors (CSP violations included)')
  t.same(outside, [], "no request left the page's origin")
  t.same(dialogs, [], 'no dialog')

  // The balancer goes away: the page keeps its figures and says they are stale.
  const requests = await page.getAttribute('[data-upstream="S1"][data-field="requests"]', 'data-value')
  await app.close()
  await page.waitForSelector('#live[data-status="stale"]', { timeout: 10_000 })
  t.match(await page.textContent('#live'), /^stale since \d\d:\d\d:\d\d UTC/)
  t.equal(await page.getAttribute('[data-upstream="S1"][data-field="requests"]', 'data-value'), requests, 'figures kept')
}

async function hostileIdsInBrowser (t: Test, h: AdapterHarness): Promise<void> {
  const { ups, balancer } = await stickyTrio(t, HOSTILE_IDS)
  const app = await h.start(t, { source: { balancer }, statusPage: { intervalMs: 250 } })
  await stickyTraffic(app.base, balancer, HOSTILE_IDS[2])
  const { page, errors, outside, dialogs } = await openPage(t, `${app.base}${ROUTE}`)
  await refreshedAfter(page, Date.now())
  const rowIds = (): Promise<string[]> => page.$$eval('table.upstreams tbody tr', (rows: any[]) => rows.map(r => r.dataset.id))
  t.same((await rowIds()).sort(), [...HOSTILE_IDS].sort(), 'each id shown as the text it is')
  t.same(await page.$$eval('table.upstreams tbody th', (ths: any[]) => ths.map(th => th.textContent)), await rowIds(), 'as text in its cell')

  // A new upstream: the page re-renders its table without a reload, still inert.
  const added = '<svg onload=alert(4)>'
  balancer.add({ url: ups[0]!.url, id: added })
  await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('table.upstreams tbody tr').length === 4, undefined, { timeout: 10_000 })
  t.ok((await rowIds()).includes(added), 'the added upstream is shown')
  t.equal(await page.locator('img, svg[onload], [onerror], [onmouseover]').count(), 0, 'no element from an id')
  t.equal(await page.locator('script').count(), 1, "no script but the page's own")
  t.same(dialogs, [], 'nothing ran')
  t.same(errors, [], 'no console errors (CSP violations included)')
  t.same(outside, [], "no request left the page's origin")
  const file = await screenshotPath(`${h.name}-hostile`)
  await page.screenshot({ path: file, fullPage: true })
  t.comment(`screenshot: ${file}`)
}

if (missing !== undefined && required) {
  t.fail(`${missing}: AFFINITY_REQUIRE_BROWSER=1 requires the browser test`)
} else {
  const skip = missing === undefined ? false : `${missing}: browser test skipped`
  for (const h of [fastifyHarness(), expressHarness()]) {
    t.test(`${h.name}: the status page in headless Chromium shows what stats() says, and goes stale when the balancer is gone`, { skip }, t => statusPageInBrowser(t, h))
  }
  t.test('fastify: hostile upstream ids stay text in the browser, also after the page re-renders', { skip }, t => hostileIdsInBrowser(t, fastifyHarness()))
}
