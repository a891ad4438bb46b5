import type { UpstreamInput, UpstreamSource } from '@affinity/core'

/**
 * A membership source written by hand, as the README shows one: `set` sends the whole
 * list to every subscriber, `fail` reports an error. It keeps the source contract
 * (src/discovery/source.ts): callbacks never run synchronously inside `subscribe`,
 * and none after its unsubscribe function returns. `subscribers` and `unsubscribed`
 * let the tests see the balancer subscribe and let go.
 */
export interface ManualSource extends UpstreamSource {
  set (list: unknown): void
  fail (err: Error): void
  readonly subscribers: number
  readonly unsubscribed: number
}

export function manualSource (): ManualSource {
  const subscribers = new Set<{ update: (list: UpstreamInput[]) => void, error: (err: Error) => void }>()
  let last: UpstreamInput[] | undefined
  let unsubscribed = 0
  return {
    get subscribers () { return subscribers.size },
    get unsubscribed () { return unsubscribed },
    set (list) {
      last = list as UpstreamInput[]
      for (const s of subscribers) s.update(last)
    },
    fail (err) {
      for (const s of subscribers) s.error(err)
    },
    subscribe (update, error) {
      const s = { update, error }
      subscribers.add(s)
      // A late subscriber gets the current list, on a later tick (never from inside subscribe).
      if (last !== undefined) queueMicrotask(() => { if (subscribers.has(s)) update(last!) })
      return () => {
        if (subscribers.delete(s)) unsubscribed++
      }
    },
  }
}
