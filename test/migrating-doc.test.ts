/**
 * docs/migrating.md stays true (issue 15): every row it marks as supported names a
 * test file that has a test whose title carries the row's tag; every option of
 * @fastify/http-proxy's and http-proxy-middleware's READMEs (the versions installed)
 * has a row; and every test of @fastify/http-proxy's suite that is skipped
 * (scripts/http-proxy-suite/skips.cjs) is listed with its reason.
 */
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('..', import.meta.url))
const doc = readFileSync(path.join(root, 'docs', 'migrating.md'), 'utf8')
const require = createRequire(path.join(root, 'package.json'))
const [fastifySection, expressSection] = doc.split('## From http-proxy-middleware')

/** Table rows of a section: its cells, trimmed (header and separator rows left out). */
function rows (section: string): string[][] {
  return section.split('\n')
    .filter(l => l.startsWith('|') && !l.startsWith('| ---'))
    .map(l => l.slice(1, -1).split('|').map(c => c.trim()))
    .filter(cells => cells[2] !== 'Status' && cells[0] !== 'Skipped')
}

/** The titles of the tests of a file, and of the shared tables (test/adapters/*) it runs. */
function titles (file: string): string[] {
  const source = readFileSync(path.join(root, file), 'utf8')
  const sources = [source]
  for (const m of source.matchAll(/from '\.\/adapters\/([\w-]+)\.js'/g)) sources.push(readFileSync(path.join(root, 'test', 'adapters', `${m[1]}.ts`), 'utf8'))
  const out: string[] = []
  for (const s of sources) for (const m of s.matchAll(/(?:t\.test\(|name: )(['`])((?:\\.|(?!\1).)*)\1/g)) out.push(m[2]!)
  return out
}

t.test('every supported row names a test file with a test tagged with it', async t => {
  const supported = [...rows(fastifySection!), ...rows(expressSection!)].filter(c => /^(same|other) name/.test(c[2]!))
  t.ok(supported.length >= 25, `${supported.length} supported rows`)
  for (const [from, , , cell] of supported) {
    const m = /^(test\/[\w./-]+\.ts) › (.+)$/.exec(cell ?? '')
    if (m === null) {
      t.fail(`${from}: no "test/<file>.ts › tag" in its Test cell`)
      continue
    }
    const [, file, tag] = m
    if (!existsSync(path.join(root, file!))) {
      t.fail(`${from}: ${file} does not exist`)
      continue
    }
    t.ok(titles(file!).some(title => title.includes(tag!)), `${from}: ${file} has a test titled with "${tag}"`)
  }
})

t.test('every option in @fastify/http-proxy\'s and http-proxy-middleware\'s READMEs has a row', async t => {
  const fhp = readFileSync(path.join(path.dirname(require.resolve('@fastify/http-proxy/package.json')), 'README.md'), 'utf8')
  const fhpOptions = [...fhp.matchAll(/^### `(\w+)`$/gm)].map(m => m[1]!)
  t.ok(fhpOptions.length >= 19, `${fhpOptions.length} @fastify/http-proxy options`)
  const firstColumn = (section: string): string => rows(section).map(c => c[0]).join('\n')
  for (const name of fhpOptions) t.match(firstColumn(fastifySection!), new RegExp(`\`${name}[\`:( .]`), `@fastify/http-proxy ${name}`)
  const hpm = readFileSync(path.join(path.dirname(require.resolve('http-proxy-middleware/package.json')), 'README.md'), 'utf8')
  const hpmOptions = [...hpm.matchAll(/^### `(\w+)`/gm), ...hpm.matchAll(/^- \*\*option\.([\w.]+)\*\*/gm)].map(m => m[1]!)
  t.ok(hpmOptions.length >= 30, `${hpmOptions.length} http-proxy-middleware options`)
  for (const name of hpmOptions) t.match(firstColumn(expressSection!), new RegExp(`\`${name.replace('.', '\\.')}[\`:( .]`), `http-proxy-middleware ${name}`)
})

t.test('every test skipped in the @fastify/http-proxy suite is listed with its reason', async t => {
  const { SKIPS } = require(path.join(root, 'scripts', 'http-proxy-suite', 'skips.cjs')) as { SKIPS: Record<string, string> }
  const table = rows(fastifySection!.slice(fastifySection!.indexOf('| Skipped | Why |'))).map(c => c[0]!)
  for (const key of Object.keys(SKIPS)) {
    const entry = key.includes(' › ') ? key : `${key} (whole file)`
    t.ok(table.includes(entry), `listed: ${entry}`)
  }
  t.equal(table.length, Object.keys(SKIPS).length, 'and nothing else')
})
