// The parent's child processes: starting the upstreams, the Node proxies and nginx, keeping
// track of them, and stopping every one of them at the end, on Ctrl-C / SIGTERM / SIGHUP.
import { fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { pinAs } from './cpu.js'
import { HOST } from './upstreams.js'

// The children run the entry script with --role, so `node bench/proxy.js` stays the one command.
const ENTRY = fileURLToPath(new URL('../proxy.js', import.meta.url))

const children = new Set() // { proc, kill(signal) }
const tempDirs = new Set()
let interrupted = false

/** True once a signal asked the run to stop: no further target is started or measured. */
export const isInterrupted = () => interrupted

function track (proc, extraPids = () => []) {
  const entry = {
    proc,
    kill: (signal) => {
      for (const pid of [proc.pid, ...extraPids()]) { try { process.kill(pid, signal) } catch {} }
    },
  }
  children.add(entry)
  proc.once('exit', () => children.delete(entry))
  return entry
}

export function cleanupSync () {
  for (const c of children) c.kill('SIGTERM')
  for (const d of tempDirs) { try { fs.rmSync(d, { recursive: true, force: true }) } catch {} }
}

function onSignal (signal) {
  if (interrupted) return
  interrupted = true
  process.stderr.write(`\nbench/proxy.js: ${signal}: stopping every child process\n`)
  cleanupSync()
  setTimeout(() => { for (const c of children) c.kill('SIGKILL'); process.exit(130) }, 1500).unref()
  Promise.all([...children].map(c => once(c.proc, 'exit'))).then(() => process.exit(130))
}

/** In the parent: every child is stopped when it exits or is signalled. */
export function stopChildrenOnExit () {
  process.on('exit', cleanupSync)
  process.on('SIGINT', () => onSignal('SIGINT'))
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  process.on('SIGHUP', () => onSignal('SIGHUP'))
}

/** Waits for a message of `type` from a forked child (rejects if it exits first). */
function expect (proc, type, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`no ${type} message within ${timeoutMs} ms`)) }, timeoutMs)
    const onMessage = (m) => { if (m?.type === type) { cleanup(); resolve(m) } }
    const onExit = (code, signal) => { cleanup(); reject(new Error(`the child process exited (${signal ?? code})`)) }
    const cleanup = () => { clearTimeout(timer); proc.off('message', onMessage); proc.off('exit', onExit) }
    proc.on('message', onMessage)
    proc.once('exit', onExit)
  })
}

export async function startUpstreams () {
  const proc = fork(ENTRY, ['--role', 'upstreams'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] })
  const entry = track(proc)
  const { origins } = await expect(proc, 'ready')
  pinAs(proc.pid, 'rest')
  const stats = async (reset) => { proc.send({ type: 'stats', reset }); return (await expect(proc, 'stats')).counts }
  return { proc, entry, origins, stats }
}

/** Stops a child with `stop()`, `kill()` after 5 s; false when it had exited already. */
async function stopOrKill (proc, stop, kill) {
  if (proc.exitCode !== null || proc.signalCode !== null) return false
  const exited = once(proc, 'exit')
  stop()
  const timer = setTimeout(kill, 5000)
  await exited
  clearTimeout(timer)
  return true
}

export async function startNodeProxy (target, origins, opts) {
  const execArgv = []
  if (opts.cpuProf) execArgv.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`, `--cpu-prof-name=${target.name}.cpuprofile`)
  const proc = fork(ENTRY, ['--role', 'proxy', '--target', target.name], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv,
    env: {
      ...process.env,
      AFFINITY_BENCH_UPSTREAMS: JSON.stringify(origins),
      ...(opts.allocProf ? { AFFINITY_BENCH_ALLOC_PROF: opts.allocProfDir } : {}),
      ...(target.base ? { AFFINITY_BENCH_BASE_DIR: opts.baseDir } : {}),
    },
  })
  track(proc)
  const { port } = await expect(proc, 'ready')
  pinAs(proc.pid, 'proxy')
  return {
    port,
    pid: proc.pid,
    stop: () => stopOrKill(proc, () => proc.send({ type: 'exit' }), () => proc.kill('SIGKILL')),
  }
}

export function findNginx () {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).concat('/usr/sbin')) {
    const p = path.join(dir, 'nginx')
    try { fs.accessSync(p, fs.constants.X_OK); return p } catch {}
  }
  return undefined
}

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, HOST, () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

function nginxConfig (dir, port, origins, mode) {
  const servers = origins.map(o => `    server ${new URL(o).host};`).join('\n')
  return `# written by bench/proxy.js (${mode})
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  set_real_ip_from 127.0.0.1;
  real_ip_header X-Forwarded-For;
  upstream backend {
    ${mode === 'hash' ? 'hash $http_x_user consistent;' : 'ip_hash;'}
${servers}
    keepalive 32;
    keepalive_requests 1000000;
  }
  server {
    listen ${HOST}:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # the X-Forwarded-* Affinity sets, for parity
      proxy_set_header X-Forwarded-For "$http_x_forwarded_for, $realip_remote_addr";
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
    }
  }
}
`
}

/** Worker pids of an nginx master (Linux /proc), so they can be signalled too. */
function childPids (pid) {
  try { return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) } catch { return [] }
}

/** Resolves once nginx accepts connections on `port`; throws if it exits or takes over 5 s. */
async function waitForNginx (proc, entry, dir, port, stderr) {
  const deadline = Date.now() + 5000
  for (;;) {
    if (proc.exitCode !== null) {
      let log = ''
      try { log = fs.readFileSync(path.join(dir, 'error.log'), 'utf8') } catch {}
      throw new Error(`nginx exited (${proc.exitCode}): ${stderr()}${log}`.trim())
    }
    const ok = await new Promise(resolve => {
      const s = net.connect(port, HOST, () => { s.destroy(); resolve(true) })
      s.on('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) { entry.kill('SIGKILL'); throw new Error('nginx did not start listening within 5 s') }
    await sleep(50)
  }
}

/** nginx (master + 1 worker) in a temporary prefix; `watchdog` (the upstreams child) stops it if we die. */
export async function startNginx (bin, target, origins, watchdog) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'affinity-bench-nginx-'))
  tempDirs.add(dir)
  fs.chmodSync(dir, 0o755) // as root, the worker runs as `nobody` and must reach the temp paths
  const port = await freePort()
  const conf = path.join(dir, 'nginx.conf')
  fs.writeFileSync(conf, nginxConfig(dir, port, origins, target.nginx))
  const proc = spawn(bin, ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (c) => { stderr += c })
  let workers = []
  const entry = track(proc, () => workers)
  await waitForNginx(proc, entry, dir, port, () => stderr)
  workers = childPids(proc.pid)
  const pids = [proc.pid, ...workers]
  watchdog?.send({ type: 'watch', pids })
  for (const pid of pids) pinAs(pid, 'proxy')
  return {
    port,
    pid: proc.pid,
    workers: workers.length,
    workerPids: () => workers,
    stop: async () => {
      // master and workers: SIGTERM is nginx's fast shutdown
      if (!(await stopOrKill(proc, () => entry.kill('SIGTERM'), () => entry.kill('SIGKILL')))) return
      if (watchdog?.connected) watchdog.send({ type: 'unwatch', pids })
      fs.rmSync(dir, { recursive: true, force: true })
      tempDirs.delete(dir)
    },
  }
}
