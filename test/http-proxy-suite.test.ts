/**
 * @fastify/http-proxy's own test suite (11.6.3, from its npm tarball in node_modules)
 * against @affinity/fastify through a thin shim (scripts/http-proxy-suite.mjs, issue 15):
 * every test that is not skipped with a reason (reply-from internals, options the
 * plugin refuses, a race in the test; docs/migrating.md lists them) must pass, and
 * every skip entry must still name a test of the suite. It runs the built plugin
 * (dist/, which CI builds before the tests; `npm run build` locally): the test fails
 * on a build older than its sources rather than testing stale code. About 20 s.
 */
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Sources newer than their build: the suite would test stale code (CI builds before testing). */
function staleBuilds (): string[] {
  const stale: string[] = []
  for (const pkg of ['core', 'fastify']) {
    const src = path.join(root, 'packages', pkg, 'src')
    for (const rel of readdirSync(src, { recursive: true }) as string[]) {
      if (!rel.endsWith('.ts')) continue
      const built = path.join(root, 'packages', pkg, 'dist', rel.replace(/\.ts$/, '.js'))
      let builtAt = 0
      try { builtAt = statSync(built).mtimeMs } catch {}
      if (builtAt < statSync(path.join(src, rel)).mtimeMs) stale.push(`packages/${pkg}/src/${rel}`)
    }
  }
  return stale
}

interface Result { file: string, name: string, status: 'pass' | 'fail' | 'skip', reason?: string, error?: string }
interface Report { summary: { version: string, passed: number, failed: number, skipped: number, stale: number, seconds: number }, results: Result[], stale: string[] }

t.test('@fastify/http-proxy 11.6.3\'s test suite passes against the plugin, but for the tests skipped with a reason', async t => {
  const stale = staleBuilds()
  if (stale.length > 0) {
    t.fail('dist/ is older than its sources: run `npm run build` (tsc -b) first', { stale: stale.slice(0, 10) })
    return
  }
  const script = path.join(root, 'scripts', 'http-proxy-suite.mjs')
  // The child runs plain Node on the built packages: none of tap's loaders, conditions or settings.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TAP|_TAPJS|NODE_OPTIONS$|NODE_PATH$|TS_NODE)/.test(k)))
  const child = spawn(process.execPath, [script, '--json', '--no-build'], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr.on('data', (c: Buffer) => { err += c.toString() })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  const line = out.trim().split('\n').at(-1) ?? ''
  let report: Report
  try {
    report = JSON.parse(line) as Report
  } catch {
    t.fail('the script printed no JSON report', { code, stderr: err.slice(-4000) })
    return
  }
  const { summary } = report
  t.comment(`@fastify/http-proxy ${summary.version}: ${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped in ${summary.seconds} s`)
  t.equal(summary.version, '11.6.3')
  for (const r of report.results) {
    if (r.status === 'skip') t.ok(typeof r.reason === 'string' && r.reason.length > 20, `skipped with a reason: ${r.file} › ${r.name}`)
    else t.equal(r.status, 'pass', `${r.file} › ${r.name}`, r.status === 'fail' ? { error: r.error } : {})
  }
  t.same(report.stale, [], 'every skip entry names a test of the suite')
  t.ok(summary.passed >= 60, 'routing, prefixes, rewritePrefix, route options, Location, headers and WebSocket paths ran')
  t.equal(code, 0, 'the script exits 0')
})
