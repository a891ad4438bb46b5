#!/usr/bin/env node
// Runs @fastify/http-proxy's own test suite (the version in node_modules, 11.6.3, whose
// npm tarball ships test/) against @affinity/fastify (issue 15).
//
// The test files are copied into node_modules/.cache/http-proxy-suite/ (inside the
// repository, so they resolve fastify, ws, undici… from its node_modules) with their
// imports rewritten: the plugin (`require('../')`) becomes scripts/http-proxy-suite/shim.cjs,
// which maps @fastify/http-proxy's option names onto the plugin's; `node:test` becomes a
// wrapper that skips the tests listed in scripts/http-proxy-suite/skips.cjs, each with its
// reason (reply-from internals, options the plugin refuses); the package's own internals
// (`../utils`, `../src/options`) stay the package's. Then node:test runs every file and
// this prints one line per test — PASS, FAIL or SKIP with the reason — and a summary.
// The plugin is loaded from its build (dist/): this runs `tsc -b` first (--no-build: not).
//
// Usage: node scripts/http-proxy-suite.mjs [--json] [--no-build] [--only <file>,…]
// Exit code: 0 when nothing failed and every skip entry matched a test, else 1.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { run } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const here = path.join(root, 'scripts', 'http-proxy-suite')
const args = process.argv.slice(2)
const json = args.includes('--json')
const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : undefined
const require = createRequire(path.join(root, 'package.json'))
const { SKIPS, skipReason } = require(path.join(here, 'skips.cjs'))

const pkgDir = path.dirname(require.resolve('@fastify/http-proxy/package.json'))
const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version
const log = json ? (...a) => console.error(...a) : (...a) => console.log(...a)

if (!args.includes('--no-build')) {
  const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript7/bin/tsc'), '-b'], { cwd: root, stdio: 'inherit' })
  if (tsc.status !== 0) process.exit(1)
}

// The copy: every test file and helper, imports rewritten.
const work = path.join(root, 'node_modules', '.cache', 'http-proxy-suite')
fs.rmSync(work, { recursive: true, force: true })
fs.mkdirSync(path.join(work, 'helper'), { recursive: true })
const q = JSON.stringify
function rewrite (source, file) {
  return source
    .replace(/require\((['"])node:test\1\)/g, `require(${q(path.join(here, 'node-test.cjs'))})(${q(file)})`)
    .replace(/require\((['"])(?:\.\.\/?|\.\.\/\.\.\/?)\1\)/g, `require(${q(path.join(here, 'shim.cjs'))})`)
    .replace(/require\((['"])\.\.\/(utils|src\/options)\1\)/g, (_m, _q, mod) => `require(${q(path.join(pkgDir, mod))})`)
}
const files = fs.readdirSync(path.join(pkgDir, 'test')).filter(f => f.endsWith('.js')).sort()
for (const f of files) fs.writeFileSync(path.join(work, f), rewrite(fs.readFileSync(path.join(pkgDir, 'test', f), 'utf8'), f))
for (const f of fs.readdirSync(path.join(pkgDir, 'test', 'helper'))) {
  fs.writeFileSync(path.join(work, 'helper', f), rewrite(fs.readFileSync(path.join(pkgDir, 'test', 'helper', f), 'utf8'), `helper/${f}`))
}
const selected = files.filter(f => only === undefined || only.includes(f))

log(`@fastify/http-proxy ${version} test suite against @affinity/fastify (${selected.length} files, node ${process.version})`)
const results = []
const started = Date.now()
// One node:test run per file (two at a time), so each result is known by its file.
async function runFile (file) {
  const stream = run({ files: [path.join(work, file)], timeout: 30_000 })
  stream.on('test:pass', (data) => {
    if (data.nesting !== 0) return
    const reason = data.skip === undefined || data.skip === false ? undefined : (skipReason(file, data.name) ?? String(data.skip))
    results.push({ file, name: data.name, status: reason === undefined ? 'pass' : 'skip', reason, ms: Math.round(data.details?.duration_ms ?? 0) })
  })
  stream.on('test:fail', (data) => {
    if (data.nesting !== 0) return
    const err = data.details?.error
    const cause = err?.cause ?? err
    results.push({ file, name: data.name, status: 'fail', error: String(cause?.message ?? cause).split('\n').slice(0, 6).join('\n'), ms: Math.round(data.details?.duration_ms ?? 0) })
  })
  for await (const _ of stream) { /* the events above carry what is reported */ }
}
const queue = [...selected]
await Promise.all([0, 1].map(async () => { while (queue.length > 0) await runFile(queue.shift()) }))

results.sort((a, b) => a.file.localeCompare(b.file))
for (const r of results) {
  const label = `${r.file} › ${r.name}`
  if (r.status === 'pass') log(`PASS  ${label} (${r.ms} ms)`)
  else if (r.status === 'skip') log(`SKIP  ${label}\n        ${r.reason}`)
  else log(`FAIL  ${label}\n        ${r.error.replace(/\n/g, '\n        ')}`)
}
// A skip entry that matches no test is a stale list (a test renamed upstream).
const seen = new Set(results.map(r => `${r.file} › ${r.name}`))
const seenFiles = new Set(results.map(r => r.file))
const stale = Object.keys(SKIPS).filter(k => (k.includes(' › ') ? !seen.has(k) : !seenFiles.has(k)) && (only === undefined || only.includes(k.split(' › ')[0])))
for (const k of stale) log(`STALE skip entry matches no test: ${k}`)
const count = (s) => results.filter(r => r.status === s).length
const summary = { version, files: selected.length, passed: count('pass'), failed: count('fail'), skipped: count('skip'), stale: stale.length, seconds: Math.round((Date.now() - started) / 100) / 10 }
log(`\n${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped (with reasons above)${stale.length ? `, ${stale.length} stale skip entries` : ''} in ${summary.seconds} s`)
if (json) console.log(JSON.stringify({ summary, results, stale }))
process.exitCode = summary.failed === 0 && stale.length === 0 ? 0 : 1
