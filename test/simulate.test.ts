/**
 * The balance simulator (`affinity simulate`): its figures against properties the
 * strategies are known to have (exact where the property is exact, with a
 * sampling-noise allowance where it is statistical), the SVG chart's shape, and
 * the CLI end to end. Everything runs in this process from the TypeScript sources;
 * the built dist/cli/main.js is also spawned when a build newer than the sources exists.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { cliMain as main, type CliIo } from '@affinity/core/internal'
import { renderChart, simulate, SimulationOptionError, upstreamList, type SimulationOptions, type SimulationResult } from '@affinity/core/internal'

const K = 10_000
const N = 10

const run = (o: Partial<SimulationOptions> & Pick<SimulationOptions, 'strategy'>): Promise<SimulationResult> =>
  simulate({ upstreams: upstreamList(N), keys: K, ...o })

const countOf = (r: SimulationResult, id: string): number => r.load.upstreams.find(u => u.id === id)!.count
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0)

/** Every off-diagonal (moved) cell of a movement matrix, as [from, to, count]. */
function flows (m: SimulationResult['scenarios'][number]['movement']): Array<[string, string, number]> {
  const out: Array<[string, string, number]> = []
  m.counts.forEach((row, r) => row.forEach((n, c) => { if (n > 0 && m.from[r] !== m.to[c]) out.push([m.from[r]!, m.to[c]!, n]) }))
  return out
}

// ───────────────────────────── figures ─────────────────────────────

t.test('ring: removing an upstream moves exactly its keys, about 1/N of them; adding one moves keys only onto it', async t => {
  const r = await run({ strategy: 'consistentHash' })
  t.same(r.scenarios.map(s => s.name), ['remove s1', 'add s11'], 'default scenarios: remove the first, add one')
  t.equal(r.load.placed, K)
  t.equal(sum(r.load.upstreams.map(u => u.count)), K)

  const removal = r.scenarios[0]!.movement
  t.equal(removal.moved, countOf(r, 's1'), 'exactly the keys that were on s1 moved')
  t.equal(removal.offRemoved, removal.moved)
  t.equal(removal.between, 0, 'no key moved between upstreams that stayed')
  t.same(flows(removal).map(f => f[0]).filter(id => id !== 's1'), [], 'only the s1 row has moved cells')
  t.equal(removal.fraction, removal.balancedMinimum, 'the ring moves the minimum')
  // The share on s1 is 1/N up to the ring's imbalance (≤ 5 %) and sampling noise (σ ≈ 0.3 %).
  t.ok(Math.abs(removal.fraction - 1 / N) < 0.02, `moved ${removal.fraction} ≈ 1/${N}`)
  t.equal(sum(r.scenarios[0]!.load.upstreams.map(u => u.count)), K)
  t.notOk(r.scenarios[0]!.load.upstreams.some(u => u.id === 's1'))

  const addition = r.scenarios[1]!.movement
  t.equal(addition.ontoAdded, addition.moved, 'every moved key went to the new upstream')
  t.equal(addition.between + addition.offRemoved, 0)
  t.same(flows(addition).map(f => f[1]).filter(id => id !== 's11'), [], 'only the s11 column has moved cells')
  t.equal(addition.moved, r.scenarios[1]!.load.upstreams.find(u => u.id === 's11')!.count)
  t.ok(Math.abs(addition.fraction - 1 / (N + 1)) < 0.02, `moved ${addition.fraction} ≈ 1/${N + 1}`)
})

t.test('maglev: the table balances to max/mean ≤ 1.02, within the sampling noise of 10,000 keys', async t => {
  const r = await run({ strategy: 'consistentHash', hash: { algorithm: 'maglev' } })
  // Counts of a perfectly balanced table are multinomial: each upstream's relative
  // standard deviation is √((N − 1) / K) ≈ 3 %; 4σ covers the busiest of N.
  const noise = 4 * Math.sqrt((N - 1) / K)
  t.ok(r.load.maxOverMean <= 1.02 + noise, `max/mean ${r.load.maxOverMean} ≤ 1.02 + ${noise.toFixed(3)}`)
  t.ok(r.load.minOverMean >= 0.98 - noise, `min/mean ${r.load.minOverMean} ≥ 0.98 − ${noise.toFixed(3)}`)
  const removal = r.scenarios[0]!.movement
  t.equal(removal.offRemoved, countOf(r, 's1'), 'every key of the removed upstream moved')
  t.ok(removal.between > 0 && removal.between < 0.01 * K, `maglev's extra movement is small: ${removal.between}`)
})

t.test('bounded loads: with every user holding a request, no upstream exceeds ceil(factor × mean)', async t => {
  // 5 ring points per upstream: a badly balanced ring, so the bound has work to do.
  const loose = await run({ strategy: 'consistentHash', hash: { vnodes: 5 }, hold: true, scenarios: [] })
  t.ok(loose.load.maxOverMean > 1.25, `unbounded: max/mean ${loose.load.maxOverMean}`)
  const bounded = await run({ strategy: 'consistentHash', hash: { vnodes: 5, balanceFactor: 1.25 } })
  t.equal(bounded.hold, true, 'a balance factor implies --hold')
  t.ok(bounded.load.maxOverMean <= 1.25, `bounded: max/mean ${bounded.load.maxOverMean}`)
  for (const s of bounded.scenarios) t.ok(s.load.maxOverMean <= 1.25, `${s.name}: max/mean ${s.load.maxOverMean}`)
  t.equal(bounded.scenarios.length, 2)
})

t.test('stickyCookie: adding an upstream moves nobody; removing one moves exactly its users, spread evenly', async t => {
  const r = await run({ strategy: 'stickyCookie' })
  t.equal(r.unit, 'users')
  t.same(r.load.upstreams.map(u => u.count), new Array(N).fill(K / N), 'new users placed by rotation: exact balance')
  const [removal, addition] = r.scenarios
  t.equal(addition!.movement.moved, 0, 'cookies keep every user where it was')
  t.equal(addition!.load.upstreams.find(u => u.id === 's11')!.count, 0)
  t.equal(removal!.movement.moved, K / N, "exactly s1's users moved")
  t.equal(removal!.movement.between, 0)
  const spread = removal!.movement.counts[0]!
  t.ok(Math.max(...spread) - Math.min(...spread) <= 1, `re-pinned evenly: ${spread.join(', ')}`)
})

t.test('stickyIp: the same promises, by stick table', async t => {
  const r = await run({ strategy: 'stickyIp' })
  t.equal(r.scenarios[1]!.movement.moved, 0)
  t.equal(r.scenarios[0]!.movement.moved, countOf(r, 's1'))
  t.equal(r.scenarios[0]!.movement.between, 0)
})

t.test('ipHash: removal moves only the removed upstream\'s clients; adding moves clients only onto the new one', async t => {
  const r = await run({ strategy: 'ipHash', scenarios: [{ remove: ['s3', 's7'] }, { add: ['extra'] }] })
  const [removal, addition] = r.scenarios
  t.equal(removal!.name, 'remove s3, s7')
  t.equal(removal!.movement.moved, countOf(r, 's3') + countOf(r, 's7'))
  t.equal(removal!.movement.between, 0)
  t.equal(addition!.movement.moved, addition!.movement.ontoAdded)
  t.same(addition!.added.map(u => u.id), ['extra'])
})

t.test('roundRobin: exact balance, by weight too', async t => {
  const r = await run({ strategy: 'roundRobin' })
  t.equal(r.unit, 'requests')
  t.same(r.load.upstreams.map(u => u.count), new Array(N).fill(K / N))
  t.equal(r.load.maxOverMean, 1)
  t.equal(r.load.minOverMean, 1)
  const after = r.scenarios[0]!.load.upstreams.map(u => u.count)
  t.ok(Math.max(...after) - Math.min(...after) <= 1, 'after removal: within one request')

  const weighted = await simulate({ strategy: 'roundRobin', upstreams: upstreamList(3, [1, 1, 2]), keys: 1000 })
  t.same(weighted.load.upstreams.map(u => u.count), [250, 250, 500])
  t.same(weighted.load.upstreams.map(u => u.fair), [250, 250, 500])
  t.equal(weighted.load.maxOverMean, 1)

  const uneven = await run({ strategy: 'roundRobin', keys: K + 3, scenarios: [] })
  // The rotation runs in id order (s1, s10, s2, …: the order every instance agrees on).
  const extra = uneven.load.upstreams.filter(u => u.count === 1001).map(u => u.id)
  t.same(extra, ['s1', 's2', 's10'], 'the 3 left over go to the first three by id')
  t.equal(uneven.load.upstreams.filter(u => u.count === 1000).length, 7)
})

t.test('leastConnections: rotation when requests do not overlap, least load when they are held', async t => {
  const seq = await run({ strategy: 'leastConnections', scenarios: [] })
  t.equal(seq.load.maxOverMean, 1)
  const held = await simulate({ strategy: 'leastConnections', upstreams: upstreamList(3, [1, 1, 2]), keys: 1000, hold: true, scenarios: [] })
  t.same(held.load.upstreams.map(u => u.count), [250, 250, 500], 'weighted: load per unit of weight')
})

t.test('deterministic: same arguments, same figures; another seed, other keys', async t => {
  for (const strategy of ['consistentHash', 'stickyCookie', 'stickyIp', 'leastConnections'] as const) {
    t.same(await run({ strategy, keys: 2000 }), await run({ strategy, keys: 2000 }), strategy)
  }
  const a = await run({ strategy: 'ipHash', keys: 2000, seed: 1, scenarios: [] })
  const b = await run({ strategy: 'ipHash', keys: 2000, seed: 2, scenarios: [] })
  t.notSame(a.load.upstreams.map(u => u.count), b.load.upstreams.map(u => u.count))
})

t.test('options are checked', async t => {
  const bad = async (o: Partial<SimulationOptions>, pattern: RegExp): Promise<void> => {
    await t.rejects(run({ strategy: 'consistentHash', keys: 100, ...o }), pattern)
  }
  await bad({ scenarios: [{ remove: ['nope'] }] }, /cannot remove nope: no such upstream/)
  await bad({ scenarios: [{ remove: upstreamList(N).map(u => u.id) }] }, /cannot remove every upstream/)
  await bad({ scenarios: [{ add: ['s2'] }] }, /cannot add s2/)
  await bad({ scenarios: [{}] }, /must add or remove/)
  await bad({ strategy: 'roundRobin', hash: { algorithm: 'maglev' } }, /algorithm: consistentHash options, not roundRobin's/)
  await bad({ keys: 0 }, /number of keys/)
  await bad({ seed: -1 }, /seed/)
  t.throws(() => upstreamList(2, [1]), SimulationOptionError)
  t.throws(() => upstreamList(['a', 'a']), /listed twice/)
  t.throws(() => upstreamList(['a'], [0]), /weights must be numbers > 0/)
  t.throws(() => upstreamList(0), /from 1 to/)
  t.same(upstreamList(['http://10.0.0.1:3000', 'b']).map(u => [u.id, u.url]), [['http://10.0.0.1:3000', 'http://10.0.0.1:3000'], ['b', 'http://127.0.0.1:10002']],
    'a URL is its own id, as in the balancer')
})

// ───────────────────────────── the chart ─────────────────────────────

/** A minimal well-formedness check: tags nest and close, text has no raw '<' or bare '&'. */
function checkXml (svg: string): string[] {
  const problems: string[] = []
  const stack: string[] = []
  const tag = /<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g
  let at = 0
  for (let m = tag.exec(svg); m !== null; m = tag.exec(svg)) {
    const between = svg.slice(at, m.index)
    if (between.includes('<')) problems.push(`stray '<' before offset ${m.index}`)
    if (/&(?!amp;|lt;|gt;|quot;|#39;)/.test(between)) problems.push(`bare '&' before offset ${m.index}`)
    at = m.index + m[0].length
    const [, close, name, , selfClosing] = m
    if (selfClosing === '/') continue
    if (close === '/') {
      const open = stack.pop()
      if (open !== name) problems.push(`</${name}> closes <${open}>`)
    } else stack.push(name!)
  }
  if (svg.slice(at).trim() !== '') problems.push('text after the root element')
  if (stack.length > 0) problems.push(`unclosed: ${stack.join(', ')}`)
  return problems
}

const occurrences = (s: string, needle: string): number => s.split(needle).length - 1

t.test('the SVG: self-contained, well-formed, a bar per upstream per series, every matrix cell, no NaN', async t => {
  const r = await run({ strategy: 'consistentHash', keys: 3000 })
  const svg = renderChart(r)
  t.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), 'starts with <svg and its namespace')
  t.ok(svg.trimEnd().endsWith('</svg>'))
  t.same(checkXml(svg), [], 'well-formed')
  t.notMatch(svg, /NaN|undefined|Infinity|null/)
  t.notMatch(svg, /href|<script|<image|<style|@import|url\(/, 'no external assets, no scripts')
  t.match(svg, /<title>/)
  t.match(svg, /Remove s1/)
  t.match(svg, />users</, 'y-axis title')
  t.match(svg, />upstream</, 'x-axis title')
  t.match(svg, />before</, 'legend')

  const panels = svg.split('<g class="bar-chart">').slice(1).map(p => p.slice(0, p.indexOf('</g>')))
  t.equal(panels.length, 2, 'one bar chart per scenario')
  // Removal: the 10 starting upstreams; addition: those and s11. A non-member's bar is there, zero-high.
  t.same(panels.map(p => occurrences(p, '<rect class="bar before"')), [N, N + 1])
  t.same(panels.map(p => occurrences(p, '<rect class="bar after"')), [N, N + 1])
  const maps = svg.split('<g class="heatmap">').slice(1).map(p => p.slice(0, p.indexOf('</g>')))
  t.same(maps.map(p => occurrences(p, '<rect class="cell')), [N * (N - 1), N * (N + 1)], 'rows × columns cells')
  // The s1 → s2 cell of the removal matrix carries its count.
  const s1s2 = r.scenarios[0]!.movement.counts[0]![0]!
  t.match(maps[0]!, new RegExp(`<title>s1 → s2: ${s1s2.toLocaleString('en-US')} users</title>`))

  const heights = [...svg.matchAll(/class="bar (?:before|after)"[^>]*height="([^"]+)"/g)].map(m => Number(m[1]))
  t.ok(heights.every(h => Number.isFinite(h) && h >= 0), 'bar heights are finite and not negative')
})

t.test('the SVG: escapes ids, copes with one upstream, no scenario, many upstreams', async t => {
  const odd = await simulate({ strategy: 'stickyCookie', upstreams: upstreamList(['a<b&"c\'', 'http://10.0.0.2:8080/x?']), keys: 50, scenarios: [{ add: 1 }] })
  const svg = renderChart(odd)
  t.same(checkXml(svg), [])
  t.match(svg, /a&lt;b&amp;&quot;c&#39;/)

  const single = renderChart(await simulate({ strategy: 'roundRobin', upstreams: upstreamList(1), keys: 1, scenarios: [] }))
  t.same(checkXml(single), [])
  t.equal(occurrences(single, '<rect class="bar before"'), 1)
  t.equal(occurrences(single, '<rect class="cell'), 0)
  t.notMatch(single, /NaN/)

  const many = await simulate({ strategy: 'ipHash', upstreams: upstreamList(60), keys: 2000, scenarios: [{ remove: ['s2'] }] })
  const big = renderChart(many)
  t.same(checkXml(big), [])
  t.equal(occurrences(big, '<rect class="cell'), 60 * 59)
  t.equal(occurrences(big, '<rect class="bar after"'), 60)
  t.notMatch(big, /NaN/)

  // Past 100 × 100 cells only the non-empty ones are drawn, over one backdrop.
  const huge = await simulate({ strategy: 'ipHash', upstreams: upstreamList(120), keys: 2000, scenarios: [{ remove: ['s2'] }] })
  const sparse = renderChart(huge)
  t.same(checkXml(sparse), [])
  t.equal(occurrences(sparse, '<rect class="grid"'), 1)
  const nonEmpty = huge.scenarios[0]!.movement.counts.flat().filter(n => n > 0).length
  t.equal(occurrences(sparse, '<rect class="cell'), nonEmpty, `${nonEmpty} non-empty cells of ${120 * 119}`)
  t.ok(sparse.length < 1_000_000, `${sparse.length} bytes`)
})

// ───────────────────────────── the CLI ─────────────────────────────

interface Ran { code: number, out: string, err: string }

async function cli (args: string[], cwd: string): Promise<Ran> {
  let out = ''
  let err = ''
  const io: CliIo = { out: s => { out += s }, err: s => { err += s }, cwd }
  const code = await main(args, io)
  return { code, out, err }
}

t.test('CLI in-process: report, chart file, JSON, help, errors', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'affinity-simulate-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))

  const report = await cli(['simulate', '--upstreams', '4', '--keys', '2k'], dir)
  t.equal(report.code, 0, report.err)
  t.match(report.out, /^Affinity balance simulation\n/)
  t.match(report.out, /strategy {3}consistentHash \(ring, 3,000 points per unit of weight, key: x-user header\)/)
  t.match(report.out, /traffic {4}2,000 users, each a distinct x-user header value; seed 1/)
  t.match(report.out, /Load: users per upstream/)
  t.match(report.out, /max\/mean \d\.\d{3}, min\/mean \d\.\d{3}/)
  t.match(report.out, /Scenario 1: remove s1 \(4 → 3 upstreams\)/)
  t.match(report.out, /Scenario 2: add s5 \(4 → 5 upstreams\)/)
  t.match(report.out, /between the others 0/)
  t.match(report.out, /Chart: affinity-simulation\.svg\n$/)
  const svg = await readFile(join(dir, 'affinity-simulation.svg'), 'utf8')
  t.ok(svg.startsWith('<svg'))
  t.same(checkXml(svg), [])

  const again = await cli(['simulate', '--upstreams', '4', '--keys', '2k'], dir)
  t.equal(again.out, report.out, 'the same arguments print the same report')
  t.equal(await readFile(join(dir, 'affinity-simulation.svg'), 'utf8'), svg, 'and write the same chart')

  const json = await cli(['simulate', '-s', 'consistent-hash', '--algorithm', 'maglev', '-u', 'a,b,c', '-w', '1,1,2', '-k', '3000', '--add', '1', '--remove', 'b', '--json', '--svg', 'out/chart.svg'], dir)
  t.equal(json.code, 0, json.err)
  const parsed = JSON.parse(json.out) as SimulationResult & { svg: string }
  t.equal(parsed.strategy, 'consistentHash')
  t.same(parsed.hash, { algorithm: 'maglev' })
  t.same(parsed.upstreams.map(u => [u.id, u.weight]), [['a', 1], ['b', 1], ['c', 2]])
  t.same(parsed.scenarios.map(s => s.name), ['add s4', 'remove b'], 'scenarios in command-line order')
  t.equal(sum(parsed.load.upstreams.map(u => u.count)), 3000)
  t.equal(parsed.svg, 'out/chart.svg')
  t.ok(existsSync(join(dir, 'out', 'chart.svg')), 'the chart\'s folder is created')
  t.match(json.out, /"counts": \[\n\s+\[\d+(?:, \d+)+\],\n/, 'matrix rows on one line')

  const quiet = await cli(['simulate', '-s', 'roundRobin', '-u', '3', '-k', '300', '--no-svg'], dir)
  t.equal(quiet.code, 0, quiet.err)
  t.notMatch(quiet.out, /Chart:/)
  t.match(quiet.out, /Note: roundRobin keeps no user on an upstream/)
  t.match(quiet.out, /\n {2}s1 +1 +100 +33\.33% +1\.000\n/)

  const big = await cli(['simulate', '-s', 'ipHash', '-u', '30', '-k', '3000', '--remove', 's2', '--no-svg'], dir)
  t.equal(big.code, 0, big.err)
  t.match(big.out, /largest flows/)
  t.match(big.out, /the 12 of 30 upstreams whose load changed most/)

  const help = await cli(['simulate', '--help'], dir)
  t.equal(help.code, 0)
  t.match(help.out, /^Usage: affinity simulate \[options\]/)
  t.match(help.out, /Examples:\n {2}affinity simulate\n/)
  t.equal((await cli(['--help'], dir)).code, 0)
  t.match((await cli(['help', 'simulate'], dir)).out, /Usage: affinity simulate/)
  const { version } = JSON.parse(await readFile(join(root, 'packages/core/package.json'), 'utf8')) as { version: string }
  for (const flag of ['--version', '-v']) t.same(await cli([flag], dir), { code: 0, out: `${version}\n`, err: '' }, `${flag} prints the package version`)
  t.match((await cli(['--help'], dir)).out, /-v, --version/)

  const errors: Array<[string[], RegExp]> = [
    [[], /Usage: affinity <command>/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['simulate', '--frob'], /Unknown option '--frob'/],
    [['simulate', 'extra'], /unexpected argument 'extra'/],
    [['simulate', '-s', 'random'], /unknown strategy 'random'/],
    [['simulate', '--remove', 'nope'], /cannot remove nope/],
    [['simulate', '--keys', 'many'], /--keys: expected a whole number/],
    [['simulate', '--weights', '1,x', '-u', '2'], /--weights: 'x' is not a number/],
    [['simulate', '--algorithm', 'rendezvous'], /--algorithm: expected ring or maglev/],
    [['simulate', '--balance-factor', '0.5'], /balanceFactor/],
    [['simulate', '-s', 'ipHash', '--algorithm', 'maglev'], /consistentHash options, not ipHash's/],
    [['simulate', '--svg', 'a.svg', '--no-svg'], /--svg and --no-svg together/],
  ]
  for (const [args, pattern] of errors) {
    const r = await cli(args, dir)
    t.equal(r.code, 2, `${args.join(' ') || '(nothing)'} exits 2`)
    t.match(r.err, pattern)
    t.equal(r.out, '')
  }
})

/** The built CLI, spawned, when every file it is built from has a build at least as new. */
const root = fileURLToPath(new URL('..', import.meta.url))
const distCli = join(root, 'packages/core/dist/cli/main.js')
function buildIsFresh (): boolean {
  const core = join(root, 'packages/core')
  const sources = [...readdirSync(join(core, 'src/cli')).map(f => `cli/${f}`), ...readdirSync(join(core, 'src/simulate')).map(f => `simulate/${f}`)]
  return sources.every(f => {
    const built = join(core, 'dist', f.replace(/\.ts$/, '.js'))
    return existsSync(built) && statSync(join(core, 'src', f)).mtimeMs <= statSync(built).mtimeMs
  })
}

t.test('the built CLI runs under plain node', { skip: buildIsFresh() ? false : 'no build newer than the sources (run tsc -b)' }, async t => {
  const r = spawnSync(process.execPath, [distCli, 'simulate', '-s', 'stickyCookie', '-u', '3', '-k', '300', '--json', '--no-svg'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } })
  t.equal(r.status, 0, r.stderr)
  const parsed = JSON.parse(r.stdout) as SimulationResult
  t.same(parsed.load.upstreams.map(u => u.count), [100, 100, 100])
  t.equal(parsed.scenarios[1]!.movement.moved, 0)
})
