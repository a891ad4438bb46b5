import { fork, type ChildProcess } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { forkHelper } from './forked.js'
import type { Test } from 'tap'
import type { UpstreamInfo } from '@affinity/core'

/** What a control-balancer child reports. */
export interface ChildMessage {
  port?: number
  seq?: number
  list?: UpstreamInfo[]
  online?: boolean
  balancer?: string
  control?: string
  id?: string
  state?: string
  weight?: number
  reason?: string
  detail?: { upstream: string, local?: object, stored?: object }
  version?: number
}

/** A balancer process (test/helpers/control-balancer.ts); `messages` re-emits everything it sends as 'message'. */
export interface ForkedControlBalancer {
  id: string
  url: string
  child: ChildProcess
  messages: EventEmitter
  /** Its upstreams now, as its balancer lists them. */
  list (): Promise<UpstreamInfo[]>
  /** An operation on this balancer alone (its methods, as code calls them); resolves with its list after. */
  op (op: 'drain' | 'undrain' | 'weight', id: string, weight?: number): Promise<UpstreamInfo[]>
  /** The next message for which `match` holds (a failure after `guardMs`: a guard, not a wait). */
  next (match: (m: ChildMessage) => boolean, guardMs?: number): Promise<ChildMessage>
  kill (): Promise<void>
  close (): Promise<void>
}

let seq = 0

/**
 * Forks a balancer attached to the control `name`; shut down at the end of `t`.
 * fork() hands the child this process's Node flags (tap's TypeScript loader and
 * --conditions=@affinity/source), so it runs the sources.
 */
export async function forkControlBalancer (t: Test, opts: { redisPort: number, name: string, id: string, upstreams: Array<{ id: string, url: string }> }): Promise<ForkedControlBalancer> {
  const { child, exited, kill, close } = forkHelper(t, new URL('./control-balancer.ts', import.meta.url), {
    REDIS_PORT: String(opts.redisPort), NAME: opts.name, ID: opts.id, UPSTREAMS: JSON.stringify(opts.upstreams),
  })
  const messages = new EventEmitter()
  child.on('message', (m) => messages.emit('message', m))
  const next = (match: (m: ChildMessage) => boolean, guardMs = 90_000): Promise<ChildMessage> => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { messages.off('message', listener); reject(new Error(`${opts.id}: no matching message within ${guardMs} ms`)) }, guardMs)
    const listener = (m: ChildMessage): void => {
      if (!match(m)) return
      clearTimeout(timer)
      messages.off('message', listener)
      resolve(m)
    }
    messages.on('message', listener)
  })
  const ask = async (m: object): Promise<ChildMessage> => {
    const s = ++seq
    const answer = next(r => r.seq === s, 10_000)
    child.send({ ...m, seq: s })
    return await answer
  }
  // Starting compiles the TypeScript sources in the child: generous on a loaded machine.
  const started = next(m => m.port !== undefined)
  const failed = exited.then(([code]) => { throw new Error(`${opts.id} exited (${code}) before it was ready`) })
  const { port } = await Promise.race([started, failed])
  return {
    id: opts.id,
    url: `http://127.0.0.1:${port}`,
    child,
    messages,
    list: async () => (await ask({ cmd: 'list' })).list!,
    op: async (op, id, weight) => (await ask({ cmd: 'op', op, id, weight })).list!,
    next,
    kill,
    close,
  }
}

/** Runs the `affinity` CLI (@affinity/core's main) as a child process; resolves with its exit code and output. */
export async function runCli (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  const child = fork(new URL('./cli-child.ts', import.meta.url), args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString('utf8') })
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString('utf8') })
  const [code] = await once(child, 'exit') as [number | null]
  return { code: code ?? -1, stdout, stderr }
}
