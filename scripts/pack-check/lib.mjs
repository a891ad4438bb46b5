// Process, HTTP and file helpers for scripts/pack-check.mjs.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { delimiter, join } from 'node:path'

/**
 * The environment children get: without the npm_* variables of an enclosing `npm run`
 * or pnpm (npm would read them as its own configuration), without NODE_OPTIONS (a
 * test run's `--conditions=@affinity/source` must not reach the installed packages)
 * and without node_modules/.bin folders on PATH (`npm run` adds the workspace's, whose
 * `affinity` would stand in for a bin missing from the tarball).
 */
export function childEnv (extra = {}) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && k !== 'NODE_OPTIONS') env[k] = v
  }
  env.PATH = (process.env.PATH ?? '').split(delimiter).filter(p => !/[\\/]node_modules[\\/]\.bin$/.test(p)).join(delimiter)
  return { ...env, ...extra }
}

/**
 * Runs a command to its end and resolves with its exit code and output. `timeoutMs`
 * is a safety net against a hung registry or process, not a synchronisation.
 */
export function run (cmd, args, { cwd, env = childEnv(), timeoutMs = 600_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? (signal ? 128 : 1), signal, stdout, stderr, output: stdout + stderr })
    })
  })
}

/**
 * Starts a server process and resolves once its output matches `ready` (it printed
 * that it listens); rejects if it exits first. `stop()` sends SIGTERM and waits for
 * the exit. `timeoutMs` is a safety net, not a synchronisation.
 */
export function startProcess (cmd, args, { cwd, env, ready, timeoutMs = 60_000 }) {
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const exited = once(child, 'exit')
  const app = {
    child,
    output: () => output,
    async stop () {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`not ready after ${timeoutMs} ms:\n${output}`)) }, timeoutMs)
    const onData = (d) => {
      output += d
      if (ready.test(output)) { clearTimeout(timer); resolve(app) }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`exited (${code ?? signal}) before it was ready:\n${output}`))
    })
  })
}

/** A free TCP port on 127.0.0.1, for the apps that take PORT from the environment. */
export async function freePort () {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

/** One GET on a fresh connection: { status, headers, body }. */
export function get (url, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

/** Local upstreams on 127.0.0.1:0 that answer `{ name, url }` and remember what they saw. */
export async function startUpstreams (names) {
  return Promise.all(names.map(async (name) => {
    const seen = []
    const server = http.createServer((req, res) => {
      seen.push(req.url)
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ name, url: req.url }))
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const url = `http://127.0.0.1:${server.address().port}`
    return {
      name,
      url,
      seen,
      close: () => { server.closeAllConnections(); return new Promise((resolve) => server.close(resolve)) },
    }
  }))
}

/** The first ```js block of a Markdown file. */
export function firstJsBlock (markdownFile) {
  const m = /^```js\n([\s\S]*?)^```$/m.exec(readFileSync(markdownFile, 'utf8'))
  if (m === null) throw new Error(`no \`\`\`js block in ${markdownFile}`)
  return m[1]
}

/** Every installed copy of package `name` under `dir`/node_modules, nested ones included. */
export function copiesOf (dir, name) {
  const found = []
  const walk = (modules) => {
    if (!existsSync(modules)) return
    for (const entry of readdirSync(modules)) {
      if (entry.startsWith('.')) continue
      const dirs = entry.startsWith('@') ? readdirSync(join(modules, entry)).map(s => `${entry}/${s}`) : [entry]
      for (const pkg of dirs) {
        const path = join(modules, pkg)
        if (pkg === name) found.push(`${path} (${JSON.parse(readFileSync(join(path, 'package.json'), 'utf8')).version})`)
        walk(join(path, 'node_modules'))
      }
    }
  }
  walk(join(dir, 'node_modules'))
  return found
}
