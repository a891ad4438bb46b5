import { escapeXml, GRID, INK, MUTED, niceTicks, num, shorten, text, textWidth, thousands } from '../render/svg.js'

export interface Series {
  /** Legend text, and the bar's class: `<rect class="bar before">`. */
  name: string
  color: string
}

export interface BarGroup {
  /** The upstream id (the x-axis label). */
  id: string
  /** One value per series; null where the upstream was not a member (drawn as an empty bar). */
  values: ReadonlyArray<number | null>
  /** Per series, the upstream's fair share (the weighted mean), marked across its bar; null for none. */
  fair?: ReadonlyArray<number | null>
}

export interface BarChartSpec {
  x: number
  y: number
  width: number
  height: number
  groups: readonly BarGroup[]
  series: readonly Series[]
  /** The y-axis title: "users" or "requests". */
  unit: string
}

const LABEL_SIZE = 10

/** A grouped bar chart: one group per upstream, one bar per series, with axes, grid and legend. */
export function barChart (spec: BarChartSpec): string {
  const { groups, series } = spec
  const out: string[] = ['<g class="bar-chart">']
  const labels = groups.map(g => shorten(g.id, 14))
  const left = spec.x + 58
  const right = spec.x + spec.width - 8
  const top = spec.y + 26
  const groupWidth = (right - left) / Math.max(1, groups.length)
  const widest = Math.max(...labels.map(l => textWidth(l, LABEL_SIZE)))
  const rotate = widest + 6 > groupWidth
  // Rotated labels need about one line height each; past that, label every k-th group.
  const every = rotate ? Math.max(1, Math.ceil(12 / groupWidth)) : 1
  const labelSpace = rotate ? Math.min(90, widest * 0.71 + 14) : 18
  const bottom = spec.y + spec.height - labelSpace - 22

  const max = Math.max(0, ...groups.flatMap(g => [...g.values, ...(g.fair ?? [])].map(v => v ?? 0)))
  const ticks = niceTicks(max)
  const yMax = ticks[ticks.length - 1]!
  const yOf = (v: number): number => bottom - (v / yMax) * (bottom - top)

  // Grid and y axis.
  for (const t of ticks) {
    out.push(`<line x1="${num(left)}" y1="${num(yOf(t))}" x2="${num(right)}" y2="${num(yOf(t))}" stroke="${GRID}" stroke-width="1"/>`)
    out.push(text(left - 6, yOf(t), thousands(t), { size: LABEL_SIZE, anchor: 'end', fill: MUTED, baseline: 'middle' }))
  }
  out.push(`<line x1="${num(left)}" y1="${num(top)}" x2="${num(left)}" y2="${num(bottom)}" stroke="${INK}" stroke-width="1"/>`)
  out.push(`<line x1="${num(left)}" y1="${num(bottom)}" x2="${num(right)}" y2="${num(bottom)}" stroke="${INK}" stroke-width="1"/>`)
  out.push(text(spec.x + 12, (top + bottom) / 2, spec.unit, { size: 12, anchor: 'middle', fill: INK, rotate: -90 }))
  out.push(text((left + right) / 2, spec.y + spec.height - 6, 'upstream', { size: 12, anchor: 'middle', fill: INK }))

  // Bars: every series gets a rect in every group, zero-high where it has nothing.
  const inner = groupWidth * (series.length > 1 ? 0.8 : 0.6)
  const barWidth = inner / Math.max(1, series.length)
  groups.forEach((g, k) => {
    const x0 = left + k * groupWidth + (groupWidth - inner) / 2
    series.forEach((s, j) => {
      const v = g.values[j] ?? null
      const y = yOf(v ?? 0)
      const tip = `${g.id}, ${s.name}: ${v === null ? 'not a member' : `${thousands(v)} ${spec.unit}`}`
      out.push(`<rect class="bar ${s.name}" x="${num(x0 + j * barWidth)}" y="${num(y)}" width="${num(Math.max(0.5, barWidth - 0.5))}" height="${num(bottom - y)}" fill="${s.color}"><title>${escapeXml(tip)}</title></rect>`)
      const fair = g.fair?.[j] ?? null
      if (fair !== null) {
        const fy = yOf(fair)
        out.push(`<line class="fair" x1="${num(x0 + j * barWidth)}" y1="${num(fy)}" x2="${num(x0 + (j + 1) * barWidth - 0.5)}" y2="${num(fy)}" stroke="${INK}" stroke-width="1.5" stroke-dasharray="3 2"/>`)
      }
    })
    if (k % every === 0) {
      const cx = left + (k + 0.5) * groupWidth
      out.push(rotate
        ? text(cx + 3, bottom + 10, labels[k]!, { size: LABEL_SIZE, anchor: 'end', fill: INK, rotate: -45, title: g.id })
        : text(cx, bottom + 14, labels[k]!, { size: LABEL_SIZE, anchor: 'middle', fill: INK, title: g.id }))
    }
  })

  // Legend, top right.
  let lx = right
  if (groups.some(g => g.fair !== undefined)) {
    lx -= textWidth('fair share', 11) + 24
    out.push(`<line class="legend" x1="${num(lx)}" y1="${num(spec.y + 11.5)}" x2="${num(lx + 16)}" y2="${num(spec.y + 11.5)}" stroke="${INK}" stroke-width="1.5" stroke-dasharray="3 2"/>`)
    out.push(text(lx + 20, spec.y + 11.5, 'fair share', { size: 11, fill: INK, baseline: 'middle' }))
    lx -= 8
  }
  for (const s of [...series].reverse()) {
    const w = textWidth(s.name, 11) + 18
    lx -= w
    out.push(`<rect class="legend" x="${num(lx)}" y="${num(spec.y + 6)}" width="11" height="11" fill="${s.color}"/>`)
    out.push(text(lx + 15, spec.y + 11.5, s.name, { size: 11, fill: INK, baseline: 'middle' }))
    lx -= 8
  }
  out.push('</g>')
  return out.join('\n')
}

