/** Small helpers for writing SVG by hand: escaping, numbers that are never NaN, text width. */

export const FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
export const INK = '#1f2328'
export const MUTED = '#59636e'
export const GRID = '#d1d9e0'
/** The two series, colour-blind safe (Okabe–Ito blue and orange). */
export const BEFORE = '#0072b2'
export const AFTER = '#e69f00'

export function escapeXml (s: string): string {
  return s.replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** A coordinate or size, to 0.1 px; a non-finite value is a bug, so it throws rather than writing NaN. */
export function num (x: number): string {
  if (!Number.isFinite(x)) throw new Error(`SVG coordinate is not a finite number: ${x}`)
  const r = Math.round(x * 10) / 10
  return String(Object.is(r, -0) ? 0 : r)
}

export interface TextOptions {
  size?: number
  weight?: 'bold' | 'normal'
  anchor?: 'start' | 'middle' | 'end'
  fill?: string
  /** Degrees, about (x, y). */
  rotate?: number
  /** Shown on hover, e.g. the full id of a shortened label. */
  title?: string
  baseline?: 'middle' | 'auto'
}

export function text (x: number, y: number, content: string, o: TextOptions = {}): string {
  const attrs = [`x="${num(x)}"`, `y="${num(y)}"`]
  if (o.size !== undefined) attrs.push(`font-size="${o.size}"`)
  if (o.weight === 'bold') attrs.push('font-weight="bold"')
  if (o.anchor !== undefined && o.anchor !== 'start') attrs.push(`text-anchor="${o.anchor}"`)
  if (o.fill !== undefined) attrs.push(`fill="${o.fill}"`)
  if (o.baseline === 'middle') attrs.push('dominant-baseline="central"')
  if (o.rotate !== undefined) attrs.push(`transform="rotate(${o.rotate} ${num(x)} ${num(y)})"`)
  const tip = o.title === undefined ? '' : `<title>${escapeXml(o.title)}</title>`
  return `<text ${attrs.join(' ')}>${tip}${escapeXml(content)}</text>`
}

/** Rough width of a text in the sans-serif stack (no font metrics without a browser). */
export function textWidth (s: string, size: number): number {
  return s.length * size * 0.6
}

/** An id shortened to `max` characters with an ellipsis (URL ids are long). */
export function shorten (s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(1, max - 1))}…`
}

/** 12,345 */
export { thousands } from './format.js'

/** 999, 1.2k, 12k, 1.2M: counts that fit in a heatmap cell. */
export function compact (n: number): string {
  if (n < 1000) return String(n)
  if (n < 10_000) return `${(n / 1000).toFixed(1).replace(/\.0$/, '')}k`
  if (n < 1_000_000) return `${Math.round(n / 1000)}k`
  return `${(n / 1_000_000).toFixed(1).replace(/\.0$/, '')}M`
}

/** Axis ticks at 1, 2 or 5 × 10^k, from 0 to at least `max`. */
export function niceTicks (max: number, count = 5): number[] {
  const top = Math.max(max, 1)
  const raw = top / count
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map(m => m * magnitude).find(s => s >= raw)!
  const ticks: number[] = []
  for (let v = 0; v < top + step; v += step) {
    ticks.push(Math.round(v * 1e9) / 1e9)
    if (v >= top) break
  }
  return ticks
}

/** Linear interpolation between two #rrggbb colours. */
export function mix (from: string, to: string, t: number): string {
  const a = parseInt(from.slice(1), 16)
  const b = parseInt(to.slice(1), 16)
  const k = Math.min(1, Math.max(0, t))
  let out = 0
  for (const shift of [16, 8, 0]) {
    const x = (a >> shift) & 255
    const y = (b >> shift) & 255
    out |= Math.round(x + (y - x) * k) << shift
  }
  return `#${out.toString(16).padStart(6, '0')}`
}

/** Black or white, whichever reads better on `fill`. */
export function inkOn (fill: string): string {
  const v = parseInt(fill.slice(1), 16)
  const luma = 0.299 * ((v >> 16) & 255) + 0.587 * ((v >> 8) & 255) + 0.114 * (v & 255)
  return luma < 140 ? '#ffffff' : INK
}
