import { escapeXml, num } from '../render/svg.js'

/**
 * The status page's chart: requests per second by upstream over the history
 * window, stacked, so the height is the balancer's total rate and each band is one
 * upstream's share. The geometry is computed here only; the page's script moves the
 * paths and axis labels it is sent (`ChartGeometry` in the JSON view), so the
 * browser never re-implements the layout.
 */

/** Okabe–Ito: colour-blind safe, in order of upstreams; repeats past eight. */
const PALETTE = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#56b4e9', '#d55e00', '#f0e442', '#000000'] as const

export const colorOf = (i: number): string => PALETTE[i % PALETTE.length]!

const WIDTH = 720
const HEIGHT = 240
const LEFT = 44
const RIGHT = WIDTH - 8
const TOP = 10
const BOTTOM = HEIGHT - 24
/** Horizontal grid lines at 0, ¼, ½, ¾ and 1 × the scale: a fixed count the script can relabel. */
const Y_STEPS = 4

export interface ChartPoint {
  at: number
  /** Requests per second, aligned with the series; null where the upstream had no sample. */
  values: ReadonlyArray<number | null>
}

export interface ChartGeometry {
  /** Labels of the grid lines, bottom to top. */
  yLabels: string[]
  /** One SVG path per series (`d`), empty while fewer than two samples exist. */
  paths: string[]
}

/** A step of 1, 2, 2.5 or 5 × 10^k, so that Y_STEPS steps cover `max`. */
function scaleStep (max: number): number {
  const raw = Math.max(max, 0.4) / Y_STEPS
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  return [1, 2, 2.5, 5, 10].map(m => m * magnitude).find(s => s >= raw - 1e-12)!
}

const label = (v: number): string => String(Math.round(v * 100) / 100)

export function chartGeometry (points: readonly ChartPoint[], series: number, now: number, windowMs: number): ChartGeometry {
  const x = (at: number): number => LEFT + Math.min(1, Math.max(0, (at - (now - windowMs)) / windowMs)) * (RIGHT - LEFT)
  const totals = points.map(p => p.values.reduce<number>((s, v) => s + (v ?? 0), 0))
  const step = scaleStep(Math.max(0, ...totals))
  const top = step * Y_STEPS
  const y = (v: number): number => BOTTOM - (v / top) * (BOTTOM - TOP)
  const yLabels = Array.from({ length: Y_STEPS + 1 }, (_, i) => label(step * i))
  if (points.length < 2) return { yLabels, paths: Array.from({ length: series }, () => '') }
  // Band k lies between the running sums before and after series k.
  const below = points.map(() => 0)
  const paths: string[] = []
  for (let k = 0; k < series; k++) {
    const lower = below.slice()
    points.forEach((p, i) => { below[i]! += p.values[k] ?? 0 })
    const upper = points.map((p, i) => `${num(x(p.at))},${num(y(below[i]!))}`)
    const back = points.map((p, i) => `${num(x(p.at))},${num(y(lower[i]!))}`).reverse()
    paths.push(`M${upper.join('L')}L${back.join('L')}Z`)
  }
  return { yLabels, paths }
}

/** '-15 min', '-10 min', '-5 min', 'now' (or seconds for short windows). */
function xLabels (windowMs: number): Array<{ x: number, text: string }> {
  const parts = 3
  return Array.from({ length: parts + 1 }, (_, i) => {
    const ago = windowMs * (1 - i / parts)
    const text = ago === 0 ? 'now' : windowMs >= 180_000 ? `−${label(ago / 60_000)} min` : `−${label(ago / 1000)} s`
    return { x: LEFT + (i / parts) * (RIGHT - LEFT), text }
  })
}

/** The whole chart, as first rendered by the server. */
export function chartSvg (geometry: ChartGeometry, ids: readonly string[], windowMs: number): string {
  const out = [`<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="Requests per second by upstream, stacked">`]
  for (const [i, text] of geometry.yLabels.entries()) {
    const gy = num(BOTTOM - (i / Y_STEPS) * (BOTTOM - TOP))
    out.push(`<line x1="${LEFT}" x2="${RIGHT}" y1="${gy}" y2="${gy}" class="grid"/>`)
    out.push(`<text x="${LEFT - 6}" y="${gy}" class="tick" text-anchor="end" dominant-baseline="central" data-tick="${i}">${escapeXml(text)}</text>`)
  }
  for (const { x, text } of xLabels(windowMs)) {
    const anchor = x === LEFT ? 'start' : x === RIGHT ? 'end' : 'middle'
    out.push(`<text x="${num(x)}" y="${HEIGHT - 6}" class="tick" text-anchor="${anchor}">${text}</text>`)
  }
  for (const [k, d] of geometry.paths.entries()) {
    out.push(`<path data-series="${k}" data-upstream="${escapeXml(ids[k] ?? '')}" d="${d}" fill="${colorOf(k)}" fill-opacity="0.85" stroke="${colorOf(k)}" stroke-width="1"><title>${escapeXml(ids[k] ?? '')}</title></path>`)
  }
  out.push('</svg>')
  return out.join('')
}
