import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { AffinityError } from '../errors.js'
import { renderChart } from '../simulate/chart.js'
import {
  DEFAULT_KEYS, DEFAULT_SEED, SimulationOptionError, upstreamList,
  type ScenarioSpec, type SimulationOptions,
} from '../simulate/options.js'
import { simulate } from '../simulate/simulation.js'
import { STRATEGY_NAMES, strategyName, type HashSettings } from '../simulate/strategy.js'
import type { CliIo } from './main.js'
import { report } from './report.js'
import { toJson } from './table.js'

export const DEFAULT_SVG = 'affinity-simulation.svg'

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

/** `affinity simulate …`: 0 done, 1 failed, 2 wrong arguments. */
export async function simulateCommand (argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const args = parseSimulateArgs(argv)
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

