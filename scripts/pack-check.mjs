#!/usr/bin/env node
/**
 * The packaging check CI runs after the tests: what a user gets from the registry.
 * Builds, packs every package with pnpm, installs the tarballs with npm (what users
 * run) into a fresh app under the OS temp folder (so nothing resolves from this
 * workspace) next to the frameworks' current majors, installs an unrelated package
 * afterwards (no ERESOLVE), then runs each package README's example against local
 * upstreams, a CommonJS require(), a strict `tsc --noEmit` on a typed app and
 * `npx affinity --version`. Prints a short transcript; exits 1 on any failure.
 *
 *   node scripts/pack-check.mjs [--keep]     (--keep leaves the temp folder for a look)
 */
import { randomBytes } from 'node:crypto'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { childEnv, copiesOf, firstJsBlock, freePort, get, run, startProcess, startUpstreams } from './pack-check/lib.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const fixtures = fileURLToPath(new URL('./pack-check/app/', import.meta.url))
const PACKAGES = ['core', 'fastify', 'express', 'redis']
// The frameworks' current majors from the registry, as a new user's app would have them.
// @types/redis-errors: ioredis's declarations import redis-errors, which has no types of
// its own; with skipLibCheck off (every shipped .d.ts checked, ours included) an
// ioredis user needs it too.
const REGISTRY_DEPS = ['fastify@5', 'express@5', 'ioredis@latest', 'undici@7', 'typescript@5', '@types/node@20', '@types/express', '@types/redis-errors']
const pnpm = ['-y', JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).packageManager]
const version = JSON.parse(readFileSync(join(root, 'packages/core/package.json'), 'utf8')).version

const tmp = mkdtempSync(join(tmpdir(), 'affinity-pack-check-'))
const tarballs = join(tmp, 'tarballs')
const app = join(tmp, 'app')
let failed = 0

/** Runs one check and prints one line; a failing check prints why (and the output's tail). */
async function check (name, fn) {
  const started = Date.now()
  try {
    const detail = await fn()
    console.log(`ok   ${name}${detail ? ` — ${detail}` : ''} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
    return true
  } catch (err) {
    failed++
    console.log(`FAIL ${name}\n${String(err?.message ?? err).trimEnd().split('\n').slice(-40).map(l => `     ${l}`).join('\n')}`)
    return false
  }
}

function ok (cond, message) { if (!cond) throw new Error(message) }

async function mustRun (cmd, args, opts) {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.output}`)
  return r
}

function tarList (file) { return run('tar', ['-tzf', file]).then(r => r.stdout.split('\n').filter(Boolean)) }

console.log(`Affinity pack check: node ${process.version}, ${pnpm[1]}, temp ${tmp}`)

const built = await check('build (tsc -b)', () => mustRun(process.execPath, ['node_modules/typescript7/bin/tsc', '-b'], { cwd: root }).then(() => ''))

const packed = built && await check('pnpm pack (4 packages)', async () => {
  mkdirSync(tarballs)
  for (const p of PACKAGES) await mustRun('npx', [...pnpm, 'pack', '--pack-destination', tarballs], { cwd: join(root, 'packages', p) })
  const files = readdirSync(tarballs)
  ok(files.length === PACKAGES.length, `expected ${PACKAGES.length} tarballs, got ${files.join(', ')}`)
  return files.join(', ')
})

packed && await check('tarball contents', async () => {
  const sizes = []
  for (const file of readdirSync(tarballs)) {
    const entries = await tarList(join(tarballs, file))
    const pkg = JSON.parse((await mustRun('tar', ['-xzOf', join(tarballs, file), 'package/package.json'])).stdout)
    const text = JSON.stringify(pkg)
    for (const must of ['package/package.json', 'package/LICENSE', 'package/README.md', 'package/dist/index.js', 'package/dist/index.d.ts']) {
      ok(entries.includes(must), `${file}: ${must} missing`)
    }
    const stray = entries.filter(e => /^package\/src\//.test(e) || /\.tsbuildinfo$/.test(e) || /\.map$/.test(e))
    ok(stray.length === 0, `${file} ships ${stray.slice(0, 5).join(', ')}`)
    ok(!text.includes('@affinity/source'), `${file}: the @affinity/source condition is in package.json`)
    ok(!text.includes('workspace:'), `${file}: a workspace: range is in package.json`)
    ok(pkg.main === './dist/index.js' && pkg.types === './dist/index.d.ts', `${file}: main/types`)
    for (const bin of Object.values(pkg.bin ?? {})) ok(entries.includes(`package/${bin.replace(/^\.\//, '')}`), `${file}: bin ${bin} missing`)
    sizes.push(`${pkg.name} ${entries.length} files`)
  }
  return sizes.join(', ')
})

const installed = packed && await check('npm install tarballs + ' + REGISTRY_DEPS.join(' '), async () => {
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'pack-check-app', private: true, type: 'module' }, null, 2))
  const tgz = readdirSync(tarballs).map(f => join(tarballs, f))
  const r = await mustRun('npm', ['install', '--no-audit', '--no-fund', ...tgz, ...REGISTRY_DEPS], { cwd: app })
  ok(!r.output.includes('ERESOLVE'), `ERESOLVE:\n${r.output}`)
  const versions = ['fastify', 'express', 'ioredis', 'undici', 'typescript'].map(n => `${n} ${JSON.parse(readFileSync(join(app, 'node_modules', n, 'package.json'), 'utf8')).version}`)
  return versions.join(', ')
})

installed && await check('one copy of @affinity/core and of undici', async () => {
  const core = copiesOf(app, '@affinity/core')
  const undici = copiesOf(app, 'undici')
  ok(core.length === 1, `@affinity/core: ${core.join('; ')}`)
  ok(undici.length === 1, `undici: ${undici.join('; ')}`)
  return `${core[0].replace(app, '.')}, ${undici[0].replace(app, '.')}`
})

installed && await check('npm install is-number afterwards (no ERESOLVE)', async () => {
  const r = await mustRun('npm', ['install', '--no-audit', '--no-fund', 'is-number'], { cwd: app })
  ok(!r.output.includes('ERESOLVE'), `ERESOLVE:\n${r.output}`)
  return ''
})

if (installed) {
  const ups = await startUpstreams(['S1', 'S2'])
  const env = (port, extra = {}) => childEnv({ PORT: String(port), UPSTREAMS: ups.map(u => u.url).join(','), AFFINITY_SECRET: randomBytes(32).toString('hex'), ...extra })

  /** Runs the first ```js block of the package's installed README as an app. */
  async function readmeApp (pkg, extraEnv, exercise) {
    const file = join(app, `readme-${pkg}.mjs`)
    writeFileSync(file, firstJsBlock(join(app, 'node_modules/@affinity', pkg, 'README.md')))
    const port = await freePort()
    const running = await startProcess(process.execPath, [file], { cwd: app, env: env(port, extraEnv), ready: new RegExp(`:${port}\\b`) })
    try {
      return await exercise(`http://127.0.0.1:${port}`)
    } finally {
      await running.stop()
    }
  }

  /** A browser's visits under /app: the first sets the cookie, the others stay. */
  async function stickyVisits (base, cookieName = 'affinity') {
    const first = await get(`${base}/app/hello?x=1`)
    ok(first.status === 200, `GET /app/hello: ${first.status} ${first.body}`)
    const { name, url } = JSON.parse(first.body)
    ok(url === '/hello?x=1', `the upstream saw ${url}, not /hello?x=1`)
    const cookie = (first.headers['set-cookie'] ?? []).find(c => c.startsWith(`${cookieName}=`))
    ok(cookie !== undefined, 'no sticky cookie on the first answer')
    for (let i = 0; i < 5; i++) {
      const again = JSON.parse((await get(`${base}/app/hello`, { cookie: cookie.split(';')[0] })).body)
      ok(again.name === name, `request ${i + 2} went to ${again.name}, not ${name}`)
    }
    return `6 requests, all on ${name}; /app/hello?x=1 reached the upstream as /hello?x=1`
  }

  await check('README example: @affinity/fastify (stickyCookie)', () => readmeApp('fastify', {}, stickyVisits))
  await check('README example: @affinity/express (stickyCookie)', () => readmeApp('express', {}, stickyVisits))
  await check('README example: @affinity/core on node:http (consistentHash)', () => readmeApp('core', {}, async (base) => {
    const names = new Set()
    for (let i = 0; i < 6; i++) names.add(JSON.parse((await get(`${base}/hello`, { 'x-user-id': 'alice' })).body).name)
    ok(names.size === 1, `x-user-id alice reached ${[...names].join(' and ')}`)
    return `x-user-id alice: 6 requests on ${[...names][0]}`
  }))
  await check('README example: @affinity/redis (stickyIp on redis-server, ioredis from the registry)', async () => {
    const redis = await startRedis()
    if (redis === undefined) return 'skipped: no redis-server on PATH (AFFINITY_REQUIRE_REDIS=1 makes this a failure)'
    try {
      return await readmeApp('redis', { REDIS_URL: redis.url }, async (base) => {
        const names = new Set()
        for (let i = 0; i < 4; i++) names.add(JSON.parse((await get(`${base}/app/hello`)).body).name)
        ok(names.size === 1, `one client reached ${[...names].join(' and ')}`)
        const script = `import { Redis } from 'ioredis'; const r = new Redis(${JSON.stringify(redis.url)}); const keys = await r.keys('affinity:stick:*'); console.log(JSON.stringify({ keys, values: keys.length ? await r.mget(keys) : [] })); await r.quit()`
        const { keys, values } = JSON.parse((await mustRun(process.execPath, ['--input-type=module', '-e', script], { cwd: app })).stdout)
        const up = ups.find(u => u.name === [...names][0])
        ok(keys.length === 1 && values[0] === up.url, `Redis holds ${JSON.stringify({ keys, values })}, expected one binding to ${up.url}`)
        return `4 requests on ${up.name}; Redis: ${keys[0]} → ${values[0]}`
      })
    } finally {
      await redis.stop()
    }
  })
  await Promise.all(ups.map(u => u.close()))

  await check("CommonJS: require('@affinity/core'), the adapters and the store", async () => {
    copyFileSync(join(fixtures, 'require.cjs'), join(app, 'require.cjs'))
    const r = await mustRun(process.execPath, ['require.cjs'], { cwd: app })
    return r.stdout.trim() + (r.stderr.trim() ? ` (stderr: ${r.stderr.trim()})` : '')
  })

  await check('tsc --noEmit (strict, NodeNext): a typed app, a .cts require, the README examples', async () => {
    for (const f of ['tsconfig.json', 'typed.ts', 'required.cts']) copyFileSync(join(fixtures, f), join(app, f))
    for (const p of PACKAGES) writeFileSync(join(app, `readme-${p}.ts`), firstJsBlock(join(app, 'node_modules/@affinity', p, 'README.md')))
    const r = await mustRun(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.'], { cwd: app })
    const tsc = (await run(process.execPath, ['node_modules/typescript/bin/tsc', '--version'], { cwd: app })).stdout.trim()
    return `${tsc}, ${2 + PACKAGES.length} files, skipLibCheck off (every .d.ts checked)${r.output.trim() ? `: ${r.output.trim()}` : ''}`
  })

  // `--no --`: the local bin or a failure, never a download of some other "affinity".
  await check('npx --no -- affinity --version (and -v)', async () => {
    const r = await mustRun('npx', ['--no', '--', 'affinity', '--version'], { cwd: app })
    ok(r.stdout.trim() === version, `printed ${JSON.stringify(r.stdout)}, expected ${version}`)
    const short = await mustRun('npx', ['--no', '--', 'affinity', '-v'], { cwd: app })
    ok(short.stdout.trim() === version, `-v printed ${JSON.stringify(short.stdout)}`)
    return r.stdout.trim()
  })
}

/** A throwaway redis-server on a free port, or undefined when none is installed (unless required). */
async function startRedis () {
  const which = await run('sh', ['-c', 'command -v redis-server'])
  if (which.code !== 0) {
    if (process.env.AFFINITY_REQUIRE_REDIS === '1') throw new Error('redis-server is not installed')
    return undefined
  }
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
  const server = await startProcess(which.stdout.trim(), args, { cwd: tmp, env: childEnv(), ready: /Ready to accept connections/ })
  return { url: `redis://127.0.0.1:${port}`, stop: () => server.stop() }
}

if (process.argv.includes('--keep')) console.log(`kept ${tmp}`)
else rmSync(tmp, { recursive: true, force: true })
console.log(failed === 0 ? 'pack check passed' : `pack check FAILED: ${failed} check(s)`)
process.exit(failed === 0 ? 0 : 1)
