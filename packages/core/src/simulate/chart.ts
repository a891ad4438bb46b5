import { barChart, type BarGroup } from './bar-chart.js'
import { heatmap } from './heatmap.js'
import type { SimulationResult } from './simulation.js'
import { AFTER, BEFORE, FONT, INK, MUTED, num, text, thousands } from '../render/svg.js'
import { percent, ratio } from '../render/format.js'

const WIDTH = 980
const MARGIN = 24
const HEADER = 86
const PANEL = 434


/**
 * The simulation as one self-contained SVG document (no scripts, fonts, styles or
 * links to fetch), readable in a browser and on GitHub: a header, then one panel
 * per scenario with load before/after as grouped bars and the movement matrix as
 * a heatmap. With no scenario, one panel with the load.
 */
export function renderChart (r: SimulationResult): string {
  const unit = r.unit
  const panels = Math.max(1, r.scenarios.length)
  const height = HEADER + panels * PANEL
  const body: string[] = []

  body.push(text(MARGIN, 32, `Affinity balance simulation: ${r.strategy}`, { size: 18, weight: 'bold', fill: INK }))
  body.push(text(MARGIN, 54, r.description, { size: 12, fill: MUTED }))
  body.push(text(MARGIN, 72, `${r.upstreams.length} upstreams · ${r.population} · seed ${r.seed}${r.hold ? ' · each user holds one open request' : ''}`, { size: 12, fill: MUTED }))

  if (r.scenarios.length === 0) {
    const y = HEADER
    body.push(text(MARGIN, y + 20, `Load: ${unit} per upstream`, { size: 14, weight: 'bold', fill: INK }))
    body.push(text(MARGIN, y + 40, `max/mean ${ratio(r.load.maxOverMean)} · min/mean ${ratio(r.load.minOverMean)}`, { size: 12, fill: MUTED }))
    const groups: BarGroup[] = r.load.upstreams.map(u => ({ id: u.id, values: [u.count], fair: [u.fair] }))
    body.push(barChart({ x: MARGIN, y: y + 54, width: WIDTH - 2 * MARGIN, height: PANEL - 64, groups, series: [{ name: 'before', color: BEFORE }], unit }))
  }

  r.scenarios.forEach((s, k) => {
    const y = HEADER + k * PANEL
    const m = s.movement
    const title = `${k + 1}. ${capitalise(s.name)}: ${thousands(m.moved)} of ${thousands(r.keys)} ${unit} moved (${percent(m.fraction)})`
    body.push(`<line x1="${MARGIN}" y1="${num(y)}" x2="${WIDTH - MARGIN}" y2="${num(y)}" stroke="#d1d9e0" stroke-width="1"/>`)
    body.push(text(MARGIN, y + 22, title, { size: 14, weight: 'bold', fill: INK }))
    const moved = `Moved off removed upstreams: ${thousands(m.offRemoved)} · onto added ones: ${thousands(m.ontoAdded)} · between the others: ${thousands(m.between)}`
    const balance = `A balanced placement must move at least ${percent(m.balancedMinimum)} · max/mean ${ratio(r.load.maxOverMean)} before, ${ratio(s.load.maxOverMean)} after`
    body.push(text(MARGIN, y + 42, moved, { size: 12, fill: MUTED }))
    body.push(text(MARGIN, y + 58, balance, { size: 12, fill: MUTED }))
    const groups = barGroups(r, s.load.upstreams)
    body.push(barChart({ x: MARGIN, y: y + 70, width: 560, height: PANEL - 80, groups, series: [{ name: 'before', color: BEFORE }, { name: 'after', color: AFTER }], unit }))
    body.push(heatmap({ x: MARGIN + 584, y: y + 74, width: WIDTH - 2 * MARGIN - 584, height: PANEL - 84, movement: m, unit }))
  })

  const label = `Affinity balance simulation: ${r.strategy}, ${r.upstreams.length} upstreams, ${thousands(r.keys)} ${unit}`
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="${label}" font-family="${FONT}">`,
    `<title>${label}</title>`,
    `<rect class="background" x="0" y="0" width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n')
}

/** Every upstream that was a member before or after, in order: starting ones, then added ones. */
function barGroups (r: SimulationResult, after: SimulationResult['load']['upstreams']): BarGroup[] {
  const before = new Map(r.load.upstreams.map(u => [u.id, u]))
  const now = new Map(after.map(u => [u.id, u]))
  const ids = [...r.load.upstreams.map(u => u.id), ...after.map(u => u.id).filter(id => !before.has(id))]
  return ids.map(id => ({
    id,
    values: [before.get(id)?.count ?? null, now.get(id)?.count ?? null],
    fair: [before.get(id)?.fair ?? null, now.get(id)?.fair ?? null],
  }))
}

const capitalise = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1)
