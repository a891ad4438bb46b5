import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Balancer } from '../balancer/balancer.js'
import { isBalancer } from '../balancer/brand.js'
import { invalidOption } from '../errors.js'
import { knownKeys } from '../options.js'
import { StatsHistory, type HistoryOptions } from './history.js'
import { statusHtml } from './status-html.js'
import { statusView, type StatusView } from './status-view.js'

export interface StatusPageOptions extends HistoryOptions {
  /** Show each upstream's URL. Off by default: they are internal addresses. */
  showUrls?: boolean
}

/** A response for the adapter to send: the framework writes it, so its hooks and logs see it. */
export interface StatusResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** Headers of both views: never cached (it is live and it names who is pinned where), never sniffed or framed. */
const COMMON = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const

/**
 * The page loads nothing: styles are inline, the one script runs by its nonce, the
 * chart is inline SVG, the only icon a data: URL, and the script may fetch only its
 * own origin (the JSON view).
 */
function htmlCsp (nonce: string): string {
  return `default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-${nonce}'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`
}

/**
 * A status page for one balancer, HAProxy's stats page in spirit: per upstream its
 * state, load, bound users, outcomes and health; picks by reason; requests/s by
 * upstream over the last minutes; recent state changes. Creating one starts its
 * sampler (an unref'd timer); `close()` stops it. The adapters create it when the
 * user enables the page and close it with the app.
 */
export class StatusPage {
  readonly #balancer: Balancer
  readonly #history: StatsHistory
  readonly #showUrls: boolean
  /** How often the page fetches its JSON view: the sampling interval, within 0.5–5 s. */
  readonly refreshMs: number

  constructor (balancer: Balancer, opts: StatusPageOptions = {}) {
    if (!isBalancer(balancer)) throw invalidOption('balancer', 'expected a balancer from createBalancer()')
    if (opts === null || typeof opts !== 'object') throw invalidOption('statusPage', 'expected an options object')
    knownKeys('statusPage', opts, ['showUrls', 'intervalMs', 'windowMs'])
    if (opts.showUrls !== undefined && typeof opts.showUrls !== 'boolean') throw invalidOption('statusPage.showUrls', 'expected a boolean')
    this.#balancer = balancer
    this.#history = new StatsHistory(balancer, opts)
    this.#showUrls = opts.showUrls ?? false
    this.refreshMs = Math.min(5000, Math.max(500, this.#history.intervalMs))
    this.#history.start()
  }

  /** The data behind the page, as `?format=json` sends it. */
  view (): StatusView {
    return statusView(this.#balancer, this.#history, { showUrls: this.#showUrls, refreshMs: this.refreshMs })
  }

  /** The answer for a request-target: `?format=json` gives the JSON view, anything else the page. */
  respond (url: string): StatusResponse {
    const q = url.indexOf('?')
    const format = q === -1 ? null : new URLSearchParams(url.slice(q + 1)).get('format')
    if (format === 'json') {
      const body = JSON.stringify(this.view())
      return { status: 200, headers: { ...COMMON, 'content-type': 'application/json; charset=utf-8', 'content-security-policy': "default-src 'none'; frame-ancestors 'none'" }, body }
    }
    const nonce = randomBytes(16).toString('base64')
    return { status: 200, headers: { ...COMMON, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': htmlCsp(nonce) }, body: statusHtml(this.view(), nonce) }
  }

  /** Answers a node:http request (GET or HEAD; anything else is 405). */
  handle (req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...COMMON, allow: 'GET, HEAD', 'content-type': 'application/json; charset=utf-8' })
      res.end(JSON.stringify({ statusCode: 405, error: 'Method Not Allowed', message: 'the status page answers GET and HEAD' }))
      return
    }
    const r = this.respond(req.url ?? '/')
    res.writeHead(r.status, { ...r.headers, 'content-length': Buffer.byteLength(r.body) })
    res.end(r.body)
  }

  /** Stops sampling. The page still answers, with the history it has. */
  close (): void {
    this.#history.stop()
  }
}

export function createStatusPage (balancer: Balancer, opts?: StatusPageOptions): StatusPage {
  return new StatusPage(balancer, opts)
}
