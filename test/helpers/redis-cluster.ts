import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'

/** Whether something can listen on 127.0.0.1:`port` now. */
function free (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

/** A port whose cluster bus port (port + 10000, as Redis Cluster takes it) is free too. */
async function clusterPort (taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000)
    if (taken.has(port) || taken.has(port + 10_000)) continue
    if (await free(port) && await free(port + 10_000)) {
      taken.add(port)
      taken.add(port + 10_000)
      return port
    }
  }
}

function run (bin: string, args: string[]): Promise<string> {
  const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  c.stdout.on('data', (d: Buffer) => { out += d.toString('utf8') })
  c.stderr.on('data', (d: Buffer) => { out += d.toString('utf8') })
  return new Promise((resolve, reject) => {
    c.once('error', reject)
    c.once('exit', code => (code === 0 ? resolve(out) : reject(new Error(`${path.basename(bin)} ${args.join(' ')} exited ${code}:\n${out}`))))
  })
}

/**
 * A real Redis Cluster of `n` masters (no replicas) on loopback ports, each node its
 * own redis-server with --cluster-enabled yes, joined by `redis-cli --cluster create`;
 * resolves once every node reports cluster_state:ok. Stopped at the end of `t`.
 */
export async function startRedisCluster (t: Test, serverBin: string, cliBin: string, n = 3): Promise<number[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'affinity-cluster-'))
  const children: ChildProcess[] = []
  t.teardown(async () => {
    await Promise.all(children.map(async c => {
      if (c.exitCode !== null || c.signalCode !== null) return
      const exited = once(c, 'exit')
      c.kill('SIGTERM')
      await exited
    }))
    rmSync(dir, { recursive: true, force: true })
  })
  const taken = new Set<number>()
  const ports: number[] = []
  for (let i = 0; i < n; i++) ports.push(await clusterPort(taken))
  await Promise.all(ports.map(port => new Promise<void>((resolve, reject) => {
    const c = spawn(serverBin, [
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir, '--save', '', '--appendonly', 'no',
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(c)
    let out = ''
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString('utf8')
      if (out.includes('Ready to accept connections')) resolve()
    })
    c.once('exit', code => reject(new Error(`redis-server (cluster) exited ${code} on ${port}:\n${out}`)))
  })))
  await run(cliBin, ['--cluster', 'create', ...ports.map(p => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'])
  // Nodes learn of each other over the bus: wait until each one says the cluster is up.
  for (const port of ports) {
    const end = Date.now() + 30_000
    while (!(await run(cliBin, ['-p', String(port), 'cluster', 'info'])).includes('cluster_state:ok')) {
      if (Date.now() > end) throw new Error(`the cluster is not ok on ${port} after 30 s`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
  return ports
}
