import type { Movement } from './movement.js'
import { compact, escapeXml, INK, inkOn, mix, MUTED, num, shorten, text, textWidth, thousands } from '../render/svg.js'

export interface HeatmapSpec {
  x: number
  y: number
  width: number
  height: number
  movement: Movement
  unit: string
}

/** Stayed (the diagonal) in a blue ramp, moved in an orange-red one, nothing in grey. */
const STAYED = ['#deebf7', '#08519c'] as const
const MOVED = ['#fdd0a2', '#a63603'] as const
const EMPTY = '#f6f8fa'
const LABEL_SIZE = 10
/** Past this many cells (100 × 100), empty cells are left to a backdrop. */
export const SPARSE_AFTER = 10_000

/**
 * The movement matrix as a grid: a row per upstream before the change, a column per
 * upstream after it, each cell `<rect class="cell">` coloured by its count, with the
 * count written in when the cell is big enough. Past SPARSE_AFTER cells, only cells
 * with a count are drawn, over a grey backdrop.
 */
export function heatmap (spec: HeatmapSpec): string {
  const { movement: m } = spec
  const rows = m.from.length
  const cols = m.to.length
  const rowLabels = m.from.map(id => shorten(id, 12))
  const colLabels = m.to.map(id => shorten(id, 12))
  const widestRow = Math.max(...rowLabels.map(l => textWidth(l, LABEL_SIZE)))
  const widestCol = Math.max(...colLabels.map(l => textWidth(l, LABEL_SIZE)))
  const legendSpace = 40
  const leftSpace = Math.min(96, widestRow + 30)
  const topSpace = Math.min(80, widestCol * 0.71 + 30)
  // Whole pixels while cells are big enough to show it; fractions past that, so the
  // grid always fits its box.
  const fit = Math.min(48,
    (spec.width - leftSpace) / Math.max(1, cols),
    (spec.height - topSpace - legendSpace) / Math.max(1, rows))
  const cell = fit >= 4 ? Math.floor(fit) : fit
  const left = spec.x + leftSpace
  const top = spec.y + topSpace
  const gridWidth = cell * cols
  const gridHeight = cell * rows
  const labelled = cell >= 9
  const written = cell >= 18

  let maxStayed = 0
  let maxMoved = 0
  m.counts.forEach((row, r) => row.forEach((n, c) => {
    if (m.from[r] === m.to[c]) maxStayed = Math.max(maxStayed, n)
    else maxMoved = Math.max(maxMoved, n)
  }))

  // Up to SPARSE_AFTER cells, every cell is drawn (empty ones in grey); past that, one
  // grey backdrop and only the cells with users: at 400 upstreams, a 0.6 MB file
  // rather than 48 MB.
  const sparse = rows * cols > SPARSE_AFTER
  const out: string[] = ['<g class="heatmap">']
  if (sparse) out.push(`<rect class="grid" x="${num(left)}" y="${num(top)}" width="${num(gridWidth)}" height="${num(gridHeight)}" fill="${EMPTY}"/>`)
  out.push(text(left + gridWidth / 2, spec.y + 10, 'after the change', { size: 12, anchor: 'middle', fill: INK }))
  out.push(text(spec.x + 10, top + gridHeight / 2, 'before the change', { size: 12, anchor: 'middle', fill: INK, rotate: -90 }))
  m.counts.forEach((row, r) => {
    row.forEach((n, c) => {
      if (sparse && n === 0) return
      const stayed = m.from[r] === m.to[c]
      const [lo, hi] = stayed ? STAYED : MOVED
      const fill = n === 0 ? EMPTY : mix(lo, hi, Math.sqrt(n / (stayed ? maxStayed : maxMoved)))
      const x = left + c * cell
      const y = top + r * cell
      // A sparse grid's cells can be under a pixel: keep the ones drawn visible.
      const size = sparse ? Math.max(cell, 1.5) : cell
      const tip = `${m.from[r]} → ${m.to[c]}: ${thousands(n)} ${spec.unit}${stayed ? ' (stayed)' : ''}`
      out.push(`<rect class="cell${stayed ? ' stayed' : n > 0 ? ' moved' : ''}" x="${num(x)}" y="${num(y)}" width="${num(size)}" height="${num(size)}" fill="${fill}" stroke="#ffffff" stroke-width="${cell >= 6 ? 1 : 0}"><title>${escapeXml(tip)}</title></rect>`)
      if (written && n > 0) {
        const size = Math.min(12, Math.floor(cell / 3))
        const label = [thousands(n), String(n), compact(n)].find(l => textWidth(l, size) <= cell - 3) ?? compact(n)
        out.push(text(x + cell / 2, y + cell / 2, label, { size, anchor: 'middle', fill: inkOn(fill), baseline: 'middle' }))
      }
    })
  })
  if (labelled) {
    m.from.forEach((id, r) => out.push(text(left - 4, top + (r + 0.5) * cell, rowLabels[r]!, { size: LABEL_SIZE, anchor: 'end', fill: INK, baseline: 'middle', title: id })))
    m.to.forEach((id, c) => out.push(text(left + (c + 0.5) * cell + 3, top - 4, colLabels[c]!, { size: LABEL_SIZE, fill: INK, rotate: -45, title: id })))
  }

  // Legend under the grid.
  const ly = top + gridHeight + 16
  let lx = left
  for (const [label, fill] of [['stayed', STAYED[1]], ['moved', MOVED[1]], ['none', EMPTY]] as const) {
    out.push(`<rect class="legend" x="${num(lx)}" y="${num(ly)}" width="11" height="11" fill="${fill}" stroke="${MUTED}" stroke-width="0.5"/>`)
    out.push(text(lx + 15, ly + 5.5, label, { size: 11, fill: INK, baseline: 'middle' }))
    lx += textWidth(label, 11) + 30
  }
  out.push(text(left, ly + 26, written ? `cells: ${spec.unit}, darker = more` : `darker = more ${spec.unit}; hover a cell for its count`, { size: 10, fill: MUTED }))
  out.push('</g>')
  return out.join('\n')
}
