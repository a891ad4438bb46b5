import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import os from 'node:os'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { Redis, type RedisOptions } from 'ioredis'
import affinity from '@affinity/fastify'
import { createBalancer, stickyIp, type Balancer } from '@affinity/core'
import { redisStore, type RedisStickStore, type RedisStoreOptions, type RedisStoreStats } from '@affinity/redis'
import { forkHelper } from './forked.js'
import { findBinary, withService } from './services.js'

/** The `redis-server` binary on PATH, if any. */
export function findRedisServer (): string | undefined {
  return findBinary('redis-server')
}

/** Runs `tests` with redis-server (a failure under AFFINITY_REQUIRE_REDIS=1 when missing). */
export function withRedis (t: Test, tests: (bin: string) => void): void {
  withService(t, 'redis-server', findRedisServer(), 'AFFINITY_REQUIRE_REDIS', tests)
}

/** A loopback port that was free a moment ago. */
export async function freePort (): Promise<number> {
  const s = net.createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}

/** A real redis-server on 127.0.0.1, in memory only, that can be killed and started again on the same port. */
export interface RedisServer {
  port: number
  /** Starts it (again) on `port`; resolves once it accepts connections. */
  start (): Promise<void>
  /** SIGKILL: a crash, nothing flushed. Resolves once the process is gone. */
  kill (): Promise<void>
}

/**
 * Starts redis-server on a free loopback port; it is stopped (SIGTERM) at the end of `t`.
 * `args`: more redis-server options, e.g. ['--rename-command', 'GETEX', ''] (a server without GETEX).
 */
export async function startRedisServer (t: Test, bin: string, args: string[] = []): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const killOnExit = (): void => { child?.kill('SIGKILL') }
  process.once('exit', killOnExit)
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child
    child = undefined
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const exited = once(c, 'exit')
    c.kill(signal)
    await exited
  }
  t.teardown(async () => {
    process.off('exit', killOnExit)
    await end('SIGTERM')
  })
  const server: RedisServer = {
    port,
    async start () {
      if (child !== undefined) throw new Error('redis-server is already running')
      const c = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', os.tmpdir(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      child = c
      let out = ''
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`redis-server did not start on port ${port}:\n${out}`)), 15_000)
        c.stdout!.on('data', (d: Buffer) => {
          out += d.toString('utf8')
          if (out.includes('Ready to accept connections')) { clearTimeout(timer); resolve() }
        })
        c.stderr!.on('data', (d: Buffer) => { out += d.toString('utf8') })
        c.once('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited (${code}) on port ${port}:\n${out}`)) })
        c.once('error', (err) => { clearTimeout(timer); reject(err) })
      })
    },
    kill: () => end('SIGKILL'),
  }
  await server.start()
  return server
}

/** A TCP server that accepts connections, reads everything and never answers (a hung Redis); closed at the end of `t`. */
export async function startSilentServer (t: Test): Promise<{ port: number }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.resume()
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  }))
  return { port: (server.address() as net.AddressInfo).port }
}

/** An ioredis client for tests, disconnected at the end of `t`: reconnects every 100 ms; errors are expected (Redis is killed on purpose). */
export function redisClient (t: Test, port: number, opts: RedisOptions = {}): Redis {
  const client = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 100, ...opts })
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  return client
}

/** Resolves once the client is ready; fails after 10 s. */
export async function ready (client: Redis): Promise<void> {
  if (client.status === 'ready') return
  await Promise.race([
    once(client, 'ready'),
    new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`the Redis client is not ready after 10 s (${client.status})`)), 10_000).unref()),
  ])
}

export interface RedisBalancer {
  url: string
  client: Redis
  store: RedisStickStore
  balancer: Balancer
  close (): Promise<void>
}

/**
 * One balancer instance as deployed: Fastify with `trustProxy: true` (so the client
 * address comes from X-Forwarded-For), @affinity/fastify, and
 * stickyIp({ store: redisStore(...) }) over its own ioredis client. Closed at the end
 * of `t` when one is given.
 *
 * The store's `timeoutMs` is 1 s unless given: these tests are about sharing and
 * outages, and on a loaded 2-core CI machine redis-server itself may wait for a CPU
 * longer than the 50 ms default; only the hung-Redis test is about the timeout.
 */
export async function startRedisBalancer (t: Test | undefined, opts: {
  redisPort: number
  upstreams: Array<{ id: string, url: string }>
  store?: Omit<RedisStoreOptions, 'client'>
  redis?: RedisOptions
}): Promise<RedisBalancer> {
  const client = new Redis({ host: '127.0.0.1', port: opts.redisPort, retryStrategy: () => 100, ...opts.redis })
  client.on('error', () => {})
  const store = redisStore({ client, timeoutMs: 1000, ...opts.store })
  let balancer: Balancer | undefined
  let app: FastifyInstance | undefined
  const close = async (): Promise<void> => {
    await app?.close()
    await balancer?.close()
    store.close()
    client.disconnect()
  }
  t?.teardown(close)
  try {
    await ready(client)
    balancer = createBalancer({ upstreams: opts.upstreams, strategy: stickyIp({ store }) })
    app = Fastify({ trustProxy: true, logger: false })
    await app.register(affinity, { balancer })
    await app.listen({ port: 0, host: '127.0.0.1' })
  } catch (err) {
    if (t === undefined) await close()
    throw err
  }
  const port = (app.server.address() as net.AddressInfo).port
  return { url: `http://127.0.0.1:${port}`, client, store, balancer, close }
}

/** A balancer instance in its own process (test/helpers/redis-balancer.ts). */
export interface ForkedBalancer {
  url: string
  child: ChildProcess
  stats (): Promise<RedisStoreStats>
  /** SIGKILL: the instance dies with its in-memory state. */
  kill (): Promise<void>
  close (): Promise<void>
}

/**
 * Forks one balancer process, shut down at the end of `t` (also when the test fails
 * before it is ready). fork() hands the child this process's Node flags (tap's
 * TypeScript loader and --conditions=@affinity/source), so it runs the sources, like
 * this process.
 */
export async function forkBalancer (t: Test, redisPort: number, upstreams: Array<{ id: string, url: string }>): Promise<ForkedBalancer> {
  const { child, kill, close } = forkHelper(t, new URL('./redis-balancer.ts', import.meta.url), {
    REDIS_PORT: String(redisPort), UPSTREAMS: JSON.stringify(upstreams),
  })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('the balancer process did not start within 60 s')); void kill() }, 60_000)
    child.once('message', (m: { port: number }) => { clearTimeout(timer); resolve(m.port) })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the balancer process exited (${code}) before it was ready`)) })
  })
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    stats: () => new Promise(resolve => {
      child.once('message', (m: { stats: RedisStoreStats }) => resolve(m.stats))
      child.send('stats')
    }),
    kill,
    close,
  }
}
