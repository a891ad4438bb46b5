import type { Test } from 'tap'
import type { UpstreamInput, UpstreamOptions, UpstreamSource } from '@affinity/core'

/** An error as sources report them: an AffinityError, its resolver error as `cause`. */
export type ReportedError = Error & { code?: string, cause?: { code?: string } }

/** What a source emitted to one subscription, in order, with awaitable arrivals. */
export interface Subscription {
  readonly updates: UpstreamOptions[][]
  readonly errors: ReportedError[]
  /** Callbacks that arrived after `stop()` returned (there must be none). */
  readonly late: string[]
  /** Resolves with update number `i` (0-based) once it has arrived. */
  update (i: number): Promise<UpstreamOptions[]>
  /** Resolves with error number `i` (0-based) once it has arrived. */
  error (i: number): Promise<ReportedError>
  stop (): void
}

/** Subscribes to `source` and records everything; unsubscribed at the end of `t`. */
export function subscribe (t: Test, source: UpstreamSource): Subscription {
  const updates: UpstreamOptions[][] = []
  const errors: Subscription['errors'] = []
  const late: string[] = []
  const waiters = new Set<() => void>()
  let stopped = false
  const arrived = (): void => { for (const w of waiters) w() }
  const until = <T>(what: string, get: () => T | undefined): Promise<T> => {
    const now = get()
    if (now !== undefined) return Promise.resolve(now)
    return new Promise((resolve, reject) => {
      // A guard against a hang, reported with what did arrive; never what a test waits on.
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`no ${what} within 20 s; ${updates.length} updates, the last ${JSON.stringify(updates.at(-1))}; ${errors.length} errors, the last: ${errors.at(-1)?.message}`))
      }, 20_000)
      const check = (): void => {
        const v = get()
        if (v === undefined) return
        waiters.delete(check)
        clearTimeout(timer)
        resolve(v)
      }
      waiters.add(check)
    })
  }
  const unsubscribe = source.subscribe((list: UpstreamInput[]) => {
    if (stopped) late.push(`update ${JSON.stringify(list)}`)
    updates.push(list as UpstreamOptions[])
    arrived()
  }, (err: Error) => {
    if (stopped) late.push(`error ${err.message}`)
    errors.push(err as ReportedError)
    arrived()
  })
  const stop = (): void => {
    unsubscribe()
    stopped = true
  }
  t.teardown(stop)
  return {
    updates,
    errors,
    late,
    update: i => until(`update #${i}`, () => updates[i]),
    error: i => until(`error #${i}`, () => errors[i]),
    stop,
  }
}

/** The members as `id url weight` lines: one readable value for t.same. */
export function lines (list: readonly UpstreamOptions[]): string[] {
  return list.map(m => `${m.id} ${m.url} ${m.weight}`)
}
