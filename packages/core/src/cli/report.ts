import type { LoadSummary } from '../simulate/load.js'
import type { ScenarioResult, SimulationResult } from '../simulate/simulation.js'
import { percent, ratio, thousands } from '../render/format.js'
import { indent, table } from './table.js'

// ───────────────────────────── the simulator's report ─────────────────────────────

/** Past this many upstreams the movement matrix is summarised as its largest flows. */
const MATRIX_MAX = 12

/** The human-readable report: settings, load, then each scenario. */
export function report (r: SimulationResult, svgPath?: string): string {
  const lines: string[] = []
  const ids = r.upstreams.map(u => u.id)
  const weights = r.upstreams.every(u => u.weight === 1) ? 'equal weights' : `weights ${r.upstreams.map(u => u.weight).join(', ')}`
  lines.push('Affinity balance simulation')
  lines.push(`  strategy   ${r.description}`)
  lines.push(`  upstreams  ${ids.length} (${ids.length <= 6 ? ids.join(', ') : `${ids.slice(0, 3).join(', ')} … ${ids[ids.length - 1]}`}), ${weights}`)
  lines.push(`  traffic    ${r.population}; seed ${r.seed}${r.hold ? '; each holds one open request' : ''}`)
  lines.push('')
  lines.push(`Load: ${r.unit} per upstream`)
  lines.push(...indent(loadTable(r.load, r.unit)))
  lines.push(`  max/mean ${ratio(r.load.maxOverMean)}, min/mean ${ratio(r.load.minOverMean)}${unplaced(r.load)}`)
  r.scenarios.forEach((s, k) => {
    lines.push('')
    lines.push(...scenarioReport(r, s, k + 1))
  })
  if (r.unit === 'requests' && r.scenarios.length > 0) {
    lines.push('')
    lines.push(`Note: ${r.strategy} keeps no user on an upstream; "moved" compares the i-th request`)
    lines.push('before and after the change, and one user\'s requests already spread over every upstream.')
  }
  if (svgPath !== undefined) {
    lines.push('')
    lines.push(`Chart: ${svgPath}`)
  }
  return lines.join('\n') + '\n'
}

function scenarioReport (r: SimulationResult, s: ScenarioResult, n: number): string[] {
  const m = s.movement
  const lines: string[] = []
  const before = r.upstreams.length
  lines.push(`Scenario ${n}: ${s.name} (${before} → ${before - s.removed.length + s.added.length} upstreams)`)
  lines.push(`  moved      ${thousands(m.moved)} of ${thousands(r.keys)} ${r.unit} (${percent(m.fraction)}); a balanced placement must move at least ${percent(m.balancedMinimum)}`)
  lines.push(`             off removed upstreams ${thousands(m.offRemoved)}, onto added ones ${thousands(m.ontoAdded)}, between the others ${thousands(m.between)}`)
  lines.push(`  load after max/mean ${ratio(s.load.maxOverMean)}, min/mean ${ratio(s.load.minOverMean)}${unplaced(s.load)}`)
  // Before / after per upstream, starting ones then added ones.
  const was = new Map(r.load.upstreams.map(u => [u.id, u.count]))
  const now = new Map(s.load.upstreams.map(u => [u.id, u.count]))
  const changes = [...r.load.upstreams.map(u => u.id), ...s.added.map(u => u.id)].map(id => {
    const b = was.get(id)
    const a = now.get(id)
    return { id, b, a, delta: (a ?? 0) - (b ?? 0) }
  })
  // Past MATRIX_MAX upstreams, only the largest changes (in their original order).
  const shown = changes.length <= MATRIX_MAX + 1
    ? changes
    : new Set([...changes].sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta)).slice(0, MATRIX_MAX))
  const rows = changes.filter(c => !(shown instanceof Set) || shown.has(c)).map(({ id, b, a, delta }) =>
    [id, b === undefined ? '—' : thousands(b), a === undefined ? '—' : thousands(a), delta === 0 ? '0' : `${delta > 0 ? '+' : '−'}${thousands(Math.abs(delta))}`])
  if (rows.length < changes.length) lines.push(`  the ${rows.length} of ${changes.length} upstreams whose load changed most (--json has all):`)
  lines.push(...indent(table(['upstream', 'before', 'after', 'change'], rows, 'lrrr')))
  lines.push('')
  if (m.from.length <= MATRIX_MAX + 1 && m.to.length <= MATRIX_MAX + 1) {
    lines.push(`  movement: ${r.unit} from (rows, before) → to (columns, after); diagonal = stayed, . = none`)
    const matrix = m.counts.map((row, i) => [m.from[i]!, ...row.map(x => (x === 0 ? '.' : thousands(x)))])
    lines.push(...indent(table(['', ...m.to], matrix, 'l' + 'r'.repeat(m.to.length), true)))
  } else {
    const flows: Array<[string, string, number]> = []
    m.counts.forEach((row, i) => row.forEach((x, j) => { if (x > 0 && m.from[i] !== m.to[j]) flows.push([m.from[i]!, m.to[j]!, x]) }))
    flows.sort((a, b) => b[2] - a[2] || (a[0] < b[0] ? -1 : 1))
    lines.push(`  largest flows (${flows.length} from → to pairs with movement; --json has the whole matrix):`)
    lines.push(...indent(table(['from', 'to', r.unit], flows.slice(0, 10).map(([f, t, x]) => [f, t, thousands(x)]), 'llr')))
  }
  return lines
}

function loadTable (load: LoadSummary, unit: string): string[] {
  const rows = load.upstreams.map(u => [u.id, String(u.weight), thousands(u.count), percent(load.placed === 0 ? 0 : u.count / load.placed), ratio(u.ratio)])
  return table(['upstream', 'weight', unit, 'share', '÷ fair share'], rows, 'lrrrr')
}

const unplaced = (l: LoadSummary): string => (l.unplaced > 0 ? `; ${thousands(l.unplaced)} could not be placed` : '')


