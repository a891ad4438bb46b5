// Where one door's CPU per request goes beyond others', from the --cpu-prof profiles of one
// bench/proxy.js run: on-CPU µs per request by category and by function (self time, and
// inclusive time for Affinity's functions), for a target and for the expression
// target − minus… + plus… (e.g. express-roundRobin − express-hello − floor + node-hello: what
// Affinity Express spends above Express's own cost plus forwarding). Samples count only within
// the measured rounds; µs per request = µs sampled ÷ the responses counted in those rounds.
// Profiled figures are slower than unprofiled ones: compare them with each other only.
//
// Usage: node bench/proxy.js --only … --cpu-prof-dir <dir> --json-out <dir>/run.json
//        node bench/proxy/profile-diff.js <dir>/run.json <target> [--minus a,b] [--plus c] [--top 30]
import fs from 'node:fs'
import { list, parseArgs } from '../args.js'
import { profileTimes } from './profile.js'

const HELP = fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter(l => l.startsWith('//')).map(l => l.slice(3)).join('\n')
const argv = process.argv.slice(2)
const positional = argv.filter((a, i) => !a.startsWith('--') && (i === 0 || !['--minus', '--plus', '--top'].includes(argv[i - 1])))
const o = parseArgs(argv.filter(a => !positional.includes(a)), {
  script: 'bench/proxy/profile-diff.js',
  defaults: { minus: [], plus: [], top: 30 },
  values: { '--minus': (o, v) => { o.minus = list(v) }, '--plus': (o, v) => { o.plus = list(v) }, '--top': (o, v) => { o.top = Number(v) } },
  help: HELP,
})
const [runFile, targetName] = positional
if (runFile === undefined || targetName === undefined) { process.stderr.write(HELP + '\n'); process.exit(2) }

const run = JSON.parse(fs.readFileSync(runFile, 'utf8'))

/** µs per request by category, function (self) and Affinity function (inclusive) for one target. */
function perRequest (name) {
  const row = run.targets.find(r => r.name === name)
  const file = run.profiles.find(p => p.target === name && p.file)?.file
  if (row === undefined || file === undefined) throw new Error(`${name}: no profiled target of that name in ${runFile}`)
  const requests = row.rounds.reduce((a, r) => a + r.responses, 0)
  const t = profileTimes(file, row.windows)
  const per = (m, f) => new Map([...m].map(([k, v]) => [k, f(v) / requests]))
  return {
    name,
    total: t.busy / requests,
    cat: per(t.byCat, v => v),
    fn: per(t.byFn, v => v.us),
    fnCat: new Map([...t.byFn].map(([k, v]) => [k, v.category])),
    incl: per(new Map([...t.inclusive].filter(([, v]) => v.category.startsWith('Affinity'))), v => v.us),
  }
}

const target = perRequest(targetName)
const refs = [...o.minus.map(n => ({ sign: -1, p: perRequest(n) })), ...o.plus.map(n => ({ sign: 1, p: perRequest(n) }))]
const expr = [targetName, ...refs.map(r => `${r.sign < 0 ? '−' : '+'} ${r.p.name}`)].join(' ')
const f1 = (v) => (v === undefined ? '—' : v.toFixed(1))

function table (title, key, rows) {
  const cols = [target, ...refs.map(r => r.p)]
  const names = cols.map(c => c.name)
  const width = Math.max(title.length, ...rows.map(k => k.length))
  const lines = [`${title.padEnd(width)}  ${names.map(n => n.slice(0, 12).padStart(12)).join('  ')}  ${'difference'.padStart(10)}`]
  for (const k of rows) {
    const vals = cols.map(c => c[key].get(k))
    const d = (vals[0] ?? 0) + refs.reduce((a, r, i) => a + r.sign * (vals[i + 1] ?? 0), 0)
    lines.push(`${k.padEnd(width)}  ${vals.map(v => f1(v).padStart(12)).join('  ')}  ${f1(d).padStart(10)}`)
  }
  return lines.join('\n')
}

const diffOf = (key, k) => (target[key].get(k) ?? 0) + refs.reduce((a, r) => a + r.sign * (r.p[key].get(k) ?? 0), 0)
const keys = (key) => [...new Set([target, ...refs.map(r => r.p)].flatMap(p => [...p[key].keys()]))]
const byDiff = (key) => keys(key).sort((a, b) => Math.abs(diffOf(key, b)) - Math.abs(diffOf(key, a)))

const totalDiff = target.total + refs.reduce((a, r) => a + r.sign * r.p.total, 0)
process.stdout.write([
  `Profiled on-CPU µs per request, ${expr}`,
  `(profiles of ${runFile}; totals: ${[target, ...refs.map(r => r.p)].map(p => `${p.name} ${f1(p.total)}`).join(', ')}; difference ${f1(totalDiff)})`,
  '',
  table('by category', 'cat', byDiff('cat')),
  '',
  table(`functions, self time (top ${o.top} by |difference|)`, 'fn', byDiff('fn').slice(0, o.top)),
  '',
  table('Affinity functions, inclusive', 'incl', [...target.incl.keys()].sort((a, b) => target.incl.get(b) - target.incl.get(a)).slice(0, o.top)),
  '',
].join('\n'))
