/**
 * Every TypeScript snippet in README.md, docs/ and the packages' READMEs compiles
 * as written: each ```ts block becomes a module of its own in a tap fixture folder
 * (inside the repository, so `@affinity/*`, fastify, express… resolve as for any
 * app) and the TypeScript compiler checks them all, strict, as an ESM app would
 * (NodeNext, top-level await). A snippet that leans on a name it does not declare
 * fails here, naming the file and line of the block.
 */
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('..', import.meta.url))

const sources = [
  'README.md',
  ...readdirSync(join(root, 'docs')).filter(f => f.endsWith('.md')).map(f => `docs/${f}`),
  ...readdirSync(join(root, 'packages')).map(p => `packages/${p}/README.md`),
]

interface Snippet { file: string, line: number, code: string }

function snippets (file: string): Snippet[] {
  let text: string
  try {
    text = readFileSync(join(root, file), 'utf8')
  } catch {
    return []
  }
  const out: Snippet[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    // ```typescript is the same language: a block must not escape the check by its spelling.
    if (!/^```(ts|typescript)$/.test(lines[i]!.trim())) continue
    const start = i + 1
    let end = start
    while (end < lines.length && lines[end]!.trim() !== '```') end++
    out.push({ file, line: start + 1, code: lines.slice(start, end).join('\n') })
    i = end
  }
  return out
}

t.test('every ```ts snippet in the docs compiles (strict, NodeNext)', async t => {
  const all = sources.flatMap(snippets)
  t.ok(all.length >= 10, `${all.length} snippets found`)
  const dir = t.testdir({})
  const names = all.map((s, i) => {
    const name = `snippet-${String(i).padStart(3, '0')}.ts`
    // `export {}` makes each snippet a module of its own (top-level await, no shared names).
    writeFileSync(join(dir, name), `${s.code}\nexport {}\n`)
    return name
  })
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true,
      noEmit: true,
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      target: 'ES2022',
      // No DOM: a browser global (`name`, `status`, `close`, `alert`…) must not stand in for
      // a name a snippet forgot to declare. Node's globals come from @types/node.
      lib: ['ES2022'],
      types: ['node'],
      skipLibCheck: true,
      // The workspace's TypeScript sources: no build needed to check the snippets.
      customConditions: ['@affinity/source'],
      // Only the snippets themselves are judged: the packages' sources have their own build.
      noUnusedLocals: false,
    },
    files: names,
  }))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
  const tsc = join(root, 'node_modules/typescript/bin/tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { encoding: 'utf8', cwd: dir })
  t.equal(r.error, undefined, 'the compiler ran')
  // Report each error at the markdown file and line it came from. Errors inside the packages'
  // own sources (reached through the source condition) are not the snippets': their build
  // judges them. Anything else (a snippet's error, a configuration error) fails the test.
  const errors = r.stdout.split('\n').filter(l => /(^| )error TS\d+/.test(l)).flatMap(l => {
    const m = /^(snippet-(\d+)\.ts)\((\d+),\d+\): (.*)$/.exec(l)
    if (m === null) return /^(\.\.\/)+packages\/[^/]+\/src\//.test(l) ? [] : [l]
    const s = all[Number(m[2])]!
    return [`${s.file}:${s.line + Number(m[3]) - 1}: ${m[4]}`]
  })
  t.same(errors, [], 'no snippet fails to compile')
  // A failing compiler that printed no error we recognise must not pass for a clean run.
  if (errors.length === 0) t.equal(r.status, 0, `tsc exited cleanly${r.stdout === '' ? '' : `:\n${r.stdout}`}${r.stderr}`)
})
