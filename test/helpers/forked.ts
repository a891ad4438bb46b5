import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Test } from 'tap'

/** A helper process forked for one test, with its two ways to end. */
export interface Forked {
  child: ChildProcess
  /** Resolves with [code, signal] once the process has exited. */
  exited: Promise<unknown[]>
  /** SIGKILL: the process dies with its in-memory state. */
  kill (): Promise<void>
  /** Asks the process to shut down ('close' over IPC), or kills it when it cannot be asked. */
  close (): Promise<void>
}

/**
 * Forks `module` with `env` added to this process's environment, closed at the end of
 * `t` (also when the test fails before the child is ready). fork() hands the child
 * this process's Node flags (tap's TypeScript loader and --conditions=@affinity/source),
 * so it runs the sources, like this process.
 */
export function forkHelper (t: Test, module: URL, env: Record<string, string>): Forked {
  const child = fork(module, { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = once(child, 'exit')
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null
  const kill = async (): Promise<void> => {
    if (!gone()) child.kill('SIGKILL')
    await exited
  }
  const close = async (): Promise<void> => {
    if (gone()) return
    if (child.connected) child.send('close')
    else child.kill('SIGKILL')
    await exited
  }
  t.teardown(close)
  return { child, exited, kill, close }
}
