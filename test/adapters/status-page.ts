/**
 * Status page cases of the shared scenario table (runScenarios runs them on both
 * adapters): off by default, its headers, what it shows and hides, its JSON view
 * against stats(), and hostile upstream ids.
 */
import type { Scenario } from './scenarios.js'
import { delay, request, type RawResponse } from '../helpers/http.js'
import { HOSTILE_IDS, stickyTraffic, stickyTrio, viewOf } from '../helpers/status-page.js'

const ROUTE = '/affinity/status'

/** The one script the page may run: the nonce in the CSP is the nonce on the page's only <script>. */
function scriptNonce (res: RawResponse): { csp: string | undefined, nonce: string | undefined, scripts: number } {
  const html = res.body.toString()
  const csp = res.headers['content-security-policy'] as string | undefined
  return { csp, nonce: /script-src 'nonce-([^']+)'/.exec(csp ?? '')?.[1], scripts: html.split(/<script\b/i).length - 1 }
}

export const STATUS_PAGE_SCENARIOS: Scenario[] = [
  {
    name: 'status page: off by default; its route is proxied like any other path',
    async run (t, h) {
      const { ups, balancer } = await stickyTrio(t)
      const app = await h.start(t, { source: { balancer } })
      const res = await request(`${app.base}${ROUTE}?format=json`)
      t.equal(res.status, 200, 'GET <prefix>/affinity/status?format=json')
      t.match(res.json().name, /^S\d$/, 'an upstream answered')
      t.equal(res.json().url, `${ROUTE}?format=json`, 'and saw the path below the prefix')
      t.equal(res.headers['content-security-policy'], undefined, 'not the status page')
      t.equal(ups.reduce((n, u) => n + u.seen.length, 0), 1, 'one upstream saw it once')
      t.equal((await request(`${app.url}${ROUTE}`)).status, 404, 'nothing at the route outside the prefix either')
    },
  },

  {
    name: 'status page: HTML under a strict CSP, never cached; every id, no upstream URL; the JSON view equals stats(); viewing it is not a pick',
    async run (t, h) {
      const { ups, balancer } = await stickyTrio(t)
      const app = await h.start(t, { source: { balancer }, statusPage: { intervalMs: 100 } })
      await stickyTraffic(app.base, balancer, 'S3')

      const page = await request(`${app.base}${ROUTE}`)
      t.equal(page.status, 200, 'the page')
      t.equal(page.headers['content-type'], 'text/html; charset=utf-8', 'as HTML')
      t.equal(page.headers['cache-control'], 'no-store', 'never cached')
      t.equal(page.headers['x-content-type-options'], 'nosniff', 'never sniffed')
      const { csp, nonce, scripts } = scriptNonce(page)
      t.match(csp, /^default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-[A-Za-z0-9+/=]{24}'; connect-src 'self'; img-src data:;/, 'a strict CSP: nothing but its own styles, its nonce script and its own origin')
      t.equal(scripts, 1, 'one script')
      t.ok(page.body.toString().includes(`<script nonce="${nonce}">`), 'carrying the nonce of the CSP')
      t.not(nonce, scriptNonce(await request(`${app.base}${ROUTE}`)).nonce, 'a fresh nonce per response')
      t.equal(page.headers['set-cookie'], undefined, 'the page sets no balancer cookie')
      const html = page.body.toString()
      for (const u of ups) {
        t.ok(html.includes(`data-upstream="${u.name}"`), `${u.name} is on the page`)
        t.notOk(html.includes(u.url) || html.includes(`:${u.port}`), `${u.name}'s address is not`)
      }
      t.notOk(/\b(src|href)="(?!data:)/.test(html), 'nothing loaded from anywhere')

      const res = await request(`${app.base}${ROUTE}?format=json`)
      t.equal(res.status, 200, 'the JSON view')
      t.equal(res.headers['content-type'], 'application/json; charset=utf-8', 'as JSON')
      t.equal(res.headers['cache-control'], 'no-store', 'never cached either')
      const view = res.json()
      const stats = balancer.stats()
      t.same(view.upstreams, viewOf(stats), 'per upstream: every figure equals stats()')
      t.same(view.picks, stats.picks, 'picks by reason equal stats(): the page views were not picks')
      t.same(view.changes, stats.changes, 'state changes equal stats()')
      t.same(view.changes.map((c: { upstream: string, from: string, to: string }) => `${c.upstream}:${c.from}→${c.to}`), ['S3:up→draining'], 'the drain')
      t.equal(view.totals.boundUsers, 9, 'six users and three more bound')
      t.equal(view.totals.requests, stats.upstreams.reduce((n, u) => n + u.requests, 0), 'total requests')
      t.notOk(JSON.stringify(view).includes('127.0.0.1'), 'no address in the JSON view')
      t.same(ups.map(u => u.seen.some(s => s.url.includes('affinity'))), [false, false, false], 'no upstream saw the page')

      const head = await request(`${app.base}${ROUTE}`, { method: 'HEAD' })
      t.equal(head.status, 200, 'HEAD')
      t.equal(head.body.length, 0, 'HEAD: headers only')

      // Samples land every intervalMs, one series value per upstream.
      await delay(350)
      const later: { history: { ids: string[], samples: Array<{ rps: unknown[] }> }, chart: { paths: string[] } } = (await request(`${app.base}${ROUTE}?format=json`)).json()
      t.same(later.history.ids, ['S1', 'S2', 'S3'], 'history by upstream')
      t.ok(later.history.samples.length >= 2, `samples taken (${later.history.samples.length})`)
      t.ok(later.history.samples.every(s => s.rps.length === 3), 'a rate per upstream in each')
      t.equal(later.chart.paths.length, 3, 'a chart band per upstream')
      t.ok(later.chart.paths.every(d => d.startsWith('M')), 'each drawn')

      const shown = await h.start(t, { source: { balancer: (await stickyTrio(t)).balancer }, statusPage: { showUrls: true, route: '/lb' } })
      const withUrls = await request(`${shown.base}/lb?format=json`)
      t.ok(withUrls.json().upstreams.every((u: { url?: string }) => u.url?.startsWith('http://127.0.0.1:')), 'showUrls: true shows them, at a route of your choice')
    },
  },

  {
    name: 'status page: hostile upstream ids render as text, in the page and in its JSON view',
    async run (t, h) {
      const { balancer } = await stickyTrio(t, HOSTILE_IDS)
      const app = await h.start(t, { source: { balancer }, statusPage: { intervalMs: 100 } })
      await stickyTraffic(app.base, balancer, HOSTILE_IDS[2])
      const html = (await request(`${app.base}${ROUTE}`)).body.toString()
      t.notOk(html.includes('<img'), 'no <img> element')
      t.equal(html.split(/<script\b/i).length - 1, 1, 'no <script> but ours')
      // Attribute values quoted (and escaped, so no raw quote inside) may hold anything: strip them first.
      t.notOk(/<[a-z][^>]*\son(error|mouseover)\s*=/i.test(html.replace(/"[^"]*"/g, '""')), 'no tag with an event handler attribute')
      t.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'), 'the id, escaped')
      t.ok(html.includes('&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;'), 'the second, escaped')
      t.ok(html.includes('&#39; onmouseover=&#39;alert(3)&#39; x=&#39;'), 'the third, escaped')
      const view = (await request(`${app.base}${ROUTE}?format=json`)).json()
      t.same(view.upstreams.map((u: { id: string }) => u.id).sort(), [...HOSTILE_IDS].sort(), 'the JSON view carries the ids as they are')
      t.equal(view.changes[0].upstream, HOSTILE_IDS[2], 'and in its state changes')
    },
  },
]
