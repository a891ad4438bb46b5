#!/usr/bin/env node
/**
 * The `affinity` command. One subcommand for now: `affinity simulate`, the balance
 * simulator (simulate/simulation.ts runs it, simulate/chart.ts draws it). This
 * file parses the arguments and prints the report.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { readFileSync, realpathSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { AffinityError } from './errors.js'
import { renderChart } from './simulate/chart.js'
import type { LoadSummary } from './simulate/load.js'
import {
  DEFAULT_KEYS, DEFAULT_SEED, SimulationOptionError, upstreamList,
  type ScenarioSpec, type SimulationOptions,
} from './simulate/options.js'
import { simulate, type ScenarioResult, type SimulationResult } from './simulate/simulation.js'
import { STRATEGY_NAMES, strategyName, type HashSettings } from './simulate/strategy.js'
import { percent, ratio, thousands } from './render/format.js'

export interface CliIo {
  out (text: string): void
  err (text: string): void
  /** Where a relative --svg path is written. */
  cwd: string
}

const processIo: CliIo = {
  out: (s) => { process.stdout.write(s) },
  err: (s) => { process.stderr.write(s) },
  cwd: process.cwd(),
}

export const DEFAULT_SVG = 'affinity-simulation.svg'

const USAGE = `Usage: affinity <command> [options]

Commands:
  simulate   replay synthetic users through a real balancer: load per upstream,
             who moves when upstreams are added or removed, and an SVG chart

Options:
  -v, --version  print the version of @affinity/core
  -h, --help     this help

Run 'affinity simulate --help' for its options.
`

export const SIMULATE_HELP = `Usage: affinity simulate [options]

Replays synthetic users through a real Affinity balancer (createBalancer with the
strategy's own code; it only chooses, nothing is connected to) and reports how the
users spread over the upstreams and who moves when upstreams are added or removed.
Writes an SVG chart: load before/after per upstream, and the movement matrix.

Options:
  -s, --strategy NAME       ${STRATEGY_NAMES.slice(0, 4).join(', ')},
                            consistentHash (the default) or ipHash
  -u, --upstreams N|IDS     N upstreams named s1…sN (default 10), or a comma-separated
                            list of ids or URLs (a URL is its own id, as in the balancer)
  -w, --weights LIST        one weight per upstream, e.g. 1,1,2 (default: all 1)
  -k, --keys K              how many users (default ${DEFAULT_KEYS.toLocaleString('en-US')}; 10k and 1e6 work):
                              consistentHash      distinct x-user header values
                              ipHash, stickyIp    distinct random IPv4 client addresses
                              stickyCookie        users keeping the cookie they were issued
                              roundRobin, leastConnections: K sequential requests
      --add N|IDS           scenario: add N upstreams (s<N+1>, …) or these ids (weight 1)
      --remove IDS          scenario: remove these upstreams (comma-separated ids)
                            Each --add and --remove is one scenario, run in the order
                            given, each from the starting upstreams. Default: remove
                            the first upstream and, separately, add one.
      --algorithm ring|maglev   consistentHash: a ring (default) or a Maglev table
      --balance-factor F    consistentHash: bounded loads, e.g. 1.25 (implies --hold)
      --vnodes N            consistentHash ring: points per unit of weight (default 3000)
      --table-size P        consistentHash maglev: table size, a prime (default 65537)
      --hold                each user keeps one request open while the others arrive
                            (long polls, WebSockets), so leastConnections, the sticky
                            strategies' first placement and bounded loads see the load
      --seed N              seed for user ids and client addresses (default ${DEFAULT_SEED}):
                            the same arguments always print the same figures
      --svg FILE            where to write the chart (default ${DEFAULT_SVG})
      --no-svg              write no chart
      --json                print the results as JSON instead of the report
  -h, --help                this help

"max/mean" is the busiest upstream's count over its fair share (the mean, weighted
by weight); "min/mean" the idlest one's. 1.000 is perfect balance.

Examples:
  affinity simulate
  affinity simulate --strategy consistentHash --algorithm maglev --keys 100k
  affinity simulate -s consistentHash --balance-factor 1.25 -u 5 --weights 1,1,1,1,2
  affinity simulate -s stickyCookie --upstreams a,b,c --add 1 --remove b
  affinity simulate -s ipHash -u 20 --remove s3,s7 --json --no-svg
  affinity simulate -s roundRobin -u 3 --keys 300 --svg rr.svg
`

/** Thrown for a wrong argument: printed with a pointer to --help, exit code 2. */
class UsageError extends Error {}

/**
 * Runs the CLI with `argv` (without node and the script) and returns the exit
 * code: 0 done, 1 failed, 2 wrong arguments. Output goes through `io`, so tests
 * call this in-process.
 */
export async function main (argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined) { io.err(USAGE); return 2 }
  if (command === '--help' || command === '-h' || command === 'help') {
    io.out(rest[0] === 'simulate' ? SIMULATE_HELP : USAGE)
    return 0
  }
  if (command === '--version' || command === '-v') {
    io.out(`${version()}\n`)
    return 0
  }
  if (command !== 'simulate') {
    io.err(`affinity: unknown command '${command}'\n\n${USAGE}`)
    return 2
  }
  try {
    const args = parseSimulateArgs(rest)
    if (args === 'help') { io.out(SIMULATE_HELP); return 0 }
    const result = await simulate(args.options)
    let svgPath: string | undefined
    if (args.svg !== undefined) {
      const file = resolve(io.cwd, args.svg)
      await mkdir(dirname(file), { recursive: true })
      await writeFile(file, renderChart(result))
      svgPath = args.svg
    }
    io.out(args.json ? toJson({ ...result, svg: svgPath ?? null }) : report(result, svgPath))
    return 0
  } catch (err) {
    if (err instanceof UsageError || err instanceof SimulationOptionError || err instanceof AffinityError || isParseArgsError(err)) {
      io.err(`affinity simulate: ${(err as Error).message}\nRun 'affinity simulate --help' for the options.\n`)
      return 2
    }
    io.err(`affinity simulate: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    return 1
  }
}

/** The package's own version: package.json is one level above both src/cli.ts and dist/cli.js. */
function version (): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

interface SimulateArgs { options: SimulationOptions, svg: string | undefined, json: boolean }

function parseSimulateArgs (argv: readonly string[]): SimulateArgs | 'help' {
  const { values, positionals, tokens } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    tokens: true,
    options: {
      strategy: { type: 'string', short: 's' },
      upstreams: { type: 'string', short: 'u' },
      weights: { type: 'string', short: 'w' },
      keys: { type: 'string', short: 'k' },
      add: { type: 'string', multiple: true },
      remove: { type: 'string', multiple: true },
      algorithm: { type: 'string' },
      'balance-factor': { type: 'string' },
      vnodes: { type: 'string' },
      'table-size': { type: 'string' },
      hold: { type: 'boolean' },
      seed: { type: 'string' },
      svg: { type: 'string' },
      'no-svg': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help === true) return 'help'
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)

  const strategy = strategyName(values.strategy ?? 'consistentHash')
  if (strategy === undefined) throw new UsageError(`--strategy: unknown strategy '${values.strategy}' (${STRATEGY_NAMES.join(', ')})`)

  const weights = values.weights === undefined ? undefined : list(values.weights).map(w => number('--weights', w))
  const upstreamsArg = values.upstreams ?? '10'
  const upstreams = upstreamList(/^\d+$/.test(upstreamsArg.trim()) ? count('--upstreams', upstreamsArg) : list(upstreamsArg), weights)

  // Scenarios in the order given on the command line.
  const scenarios: ScenarioSpec[] = []
  for (const token of tokens) {
    if (token.kind !== 'option' || (token.name !== 'add' && token.name !== 'remove')) continue
    const value = token.value ?? ''
    if (token.name === 'remove') scenarios.push({ remove: list(value) })
    else scenarios.push({ add: /^\d+$/.test(value.trim()) ? count('--add', value) : list(value) })
  }

  const algorithm = values.algorithm
  if (algorithm !== undefined && algorithm !== 'ring' && algorithm !== 'maglev') throw new UsageError(`--algorithm: expected ring or maglev, got '${algorithm}'`)
  const hash: HashSettings = {}
  if (algorithm !== undefined) hash.algorithm = algorithm
  if (values['balance-factor'] !== undefined) hash.balanceFactor = number('--balance-factor', values['balance-factor'])
  if (values.vnodes !== undefined) hash.vnodes = count('--vnodes', values.vnodes)
  if (values['table-size'] !== undefined) hash.tableSize = count('--table-size', values['table-size'])

  if (values['no-svg'] === true && values.svg !== undefined) throw new UsageError('--svg and --no-svg together: choose one')
  const options: SimulationOptions = {
    strategy,
    upstreams,
    keys: values.keys === undefined ? DEFAULT_KEYS : count('--keys', values.keys),
    seed: values.seed === undefined ? DEFAULT_SEED : count('--seed', values.seed),
    hash,
  }
  if (values.hold === true) options.hold = true
  if (scenarios.length > 0) options.scenarios = scenarios
  return { options, svg: values['no-svg'] === true ? undefined : (values.svg ?? DEFAULT_SVG), json: values.json === true }
}

const list = (s: string): string[] => s.split(',').map(x => x.trim()).filter(x => x.length > 0)

function number (option: string, s: string): number {
  const n = Number(s.trim())
  if (s.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${option}: '${s}' is not a number`)
  return n
}

/** A whole number: 10000, 10_000, 10,000, 10k, 2M or 1e6. */
function count (option: string, s: string): number {
  const m = /^(\d+(?:[_,]\d{3})*(?:\.\d+)?(?:e\d+)?)([kKmM]?)$/.exec(s.trim())
  const n = m === null ? NaN : Number(m[1]!.replace(/[_,]/g, '')) * (m[2] === '' ? 1 : /k/i.test(m[2]!) ? 1e3 : 1e6)
  if (!Number.isSafeInteger(n)) throw new UsageError(`${option}: expected a whole number, got '${s}'`)
  return n
}

function isParseArgsError (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')
}

// ───────────────────────────── the report ─────────────────────────────

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

const indent = (lines: string[]): string[] => lines.map(l => `  ${l}`)

/** Columns padded to their widest cell (or, `uniform`, all but the first to the widest of them); `align` has one l or r per column. */
function table (header: string[], rows: string[][], align: string, uniform = false): string[] {
  let widths = header.map((h, c) => Math.max(h.length, ...rows.map(r => r[c]!.length)))
  if (uniform) {
    const widest = Math.max(...widths.slice(1))
    widths = widths.map((w, c) => (c === 0 ? w : widest))
  }
  const line = (cells: string[]): string => cells.map((x, c) => (align[c] === 'r' ? x.padStart(widths[c]!) : x.padEnd(widths[c]!))).join('  ').trimEnd()
  return [line(header), ...rows.map(line)]
}

/** JSON with arrays of numbers (the matrix rows) kept on one line. */
function toJson (value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]/g, (_, inner: string) => `[${inner.split(/,\s+/).join(', ')}]`) + '\n'
}

/** True when this file is the program node was asked to run (directly, or through an npm/pnpm bin link). */
function isEntryPoint (): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url)
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, (err: unknown) => {
    process.stderr.write(`affinity: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  })
}
