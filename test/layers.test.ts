/**
 * The import graph keeps its shape (docs/development.md): every arrow points
 * down. Read from the sources with a regex over import/export-from specifiers (the
 * tree has no dynamic imports of its own modules outside cli/), so a new import
 * that breaks a rule fails here, naming the file and the import.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('..', import.meta.url))

function files (dir: string): string[] {
  return readdirSync(dir).flatMap(f => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

/** [file relative to the package's src, the import specifier, the resolved room or package]. */
function imports (pkg: string): Array<{ file: string, spec: string, to: string }> {
  const src = join(root, 'packages', pkg, 'src')
  return files(src).flatMap(file => {
    const text = readFileSync(file, 'utf8')
    const out: Array<{ file: string, spec: string, to: string }> = []
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"\n]*?(?:from\s*)?['"]([^'"]+)['"]/g)) {
      const spec = m[1]!
      const to = spec.startsWith('.') ? room(relative(src, resolve(dirname(file), spec))) : spec
      out.push({ file: relative(src, file), spec, to })
    }
    return out
  })
}

/** The room of a module path inside src: its folder, or the file itself at the top. */
function room (path: string): string {
  const i = path.indexOf('/')
  return i === -1 ? path.replace(/\.[jt]s$/, '') : path.slice(0, i)
}

const core = imports('core')

/** Which rooms each room of core may import (besides itself and node: / npm packages). */
const MAY: Record<string, readonly string[]> = {
  errors: [],
  options: ['errors'],
  model: ['errors', 'options', 'stick'],
  stick: ['errors', 'options', 'model'],
  render: [],
  hashing: ['model'],
  keys: ['errors', 'options', 'model', 'hashing'],
  cookie: ['errors'],
  strategies: ['errors', 'options', 'model', 'hashing', 'keys', 'cookie', 'stick'],
  health: ['errors', 'options', 'model'],
  forward: ['errors', 'options', 'model'],
  trace: ['model'],
  balancer: ['errors', 'options', 'model', 'strategies', 'forward', 'health', 'trace'],
  discovery: ['errors', 'options', 'model'],
  observe: ['errors', 'options', 'model', 'balancer', 'render', 'stick'],
  adapter: ['errors', 'options', 'model', 'balancer', 'forward', 'observe'],
  simulate: ['errors', 'options', 'model', 'balancer', 'strategies', 'hashing', 'stick', 'render'],
  cli: ['errors', 'simulate', 'render'],
  index: ['*'],
  internal: ['*'],
}

t.test('core: every room imports only the rooms below it', async t => {
  const bad = core.filter(({ file, spec, to }) => {
    if (!spec.startsWith('.')) return false
    const from = room(file)
    const allowed = MAY[from]
    if (allowed === undefined) return true // a new room: give it a line in MAY
    return from !== to && !allowed.includes('*') && !allowed.includes(to)
  })
  t.same(bad.map(b => `${b.file} → ${b.spec}`), [], 'no import points up or sideways')
  t.ok(core.length > 100, `read ${core.length} imports`)
})

t.test('core never imports an adapter or a web framework; strategies never see the forwarder; hashing never sees key extraction', async t => {
  t.same(core.filter(i => /^(@affinity\/(fastify|express|redis)|fastify|express|ioredis)(\/|$)/.test(i.to)).map(i => `${i.file} → ${i.spec}`), [])
  t.same(core.filter(i => room(i.file) === 'strategies' && ['forward', 'balancer', 'adapter', 'observe'].includes(i.to)).map(i => i.file), [])
  t.same(core.filter(i => room(i.file) === 'hashing' && i.to === 'keys').map(i => i.file), [])
})

t.test('adapters import core (and its adapter kit) but never each other', async t => {
  for (const [pkg, other] of [['fastify', 'express'], ['express', 'fastify']] as const) {
    const list = imports(pkg)
    t.same(list.filter(i => i.to.startsWith(`@affinity/${other}`) || i.to.startsWith('@affinity/redis')).map(i => `${i.file} → ${i.spec}`), [], `${pkg} does not import ${other}`)
    t.same(list.filter(i => i.to.startsWith('@affinity/core/') && i.to !== '@affinity/core/adapter').map(i => i.spec), [], `${pkg} reaches core only through its public entries`)
  }
})

t.test('tests, benchmarks and examples import packages by their entry points, never a file inside one', async t => {
  const outside = ['test', 'bench', 'examples', 'scripts'].flatMap(d => {
    const walk = (dir: string): string[] => readdirSync(dir).flatMap(f => {
      if (f === 'node_modules' || f.startsWith('.')) return []
      const p = join(dir, f)
      return statSync(p).isDirectory() ? walk(p) : /\.(ts|js|mjs)$/.test(f) ? [p] : []
    })
    return walk(join(root, d))
  })
  const deep = outside.filter(f => f !== fileURLToPath(import.meta.url) && /from\s+['"][./]*packages\/[a-z]+\/(src|dist)\//.test(readFileSync(f, 'utf8')))
  t.same(deep.map(f => relative(root, f)), [])
})
