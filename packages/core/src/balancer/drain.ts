import type { Upstream } from '../model/upstream.js'

export interface DrainOptions {
  /** Overrides the balancer's `drainIdleMs` for this drain. */
  idleMs?: number
}

/** A drain under way: who waits for it, its idle window, and the timer that ends the window. */
interface Drain {
  waiting: Array<() => void>
  idleMs: number
  timer: NodeJS.Timeout | undefined
}

/**
 * When drains complete. A drain of `u` completes — its promises resolve and
 * `drained(u, why)` is called once — when nothing is in flight there, no WebSocket
 * is open and, with an idle window, no bound user has come back for that long: the
 * signal a Kubernetes preStop hook waits for before the server is stopped. The
 * window counts from the drain's start (visits before it were not watched) and
 * restarts whenever a bound user comes back (`u.boundSeenAt`). When several drains
 * of one upstream wait, the longest window applies to all.
 *
 * `check(u)` is called whenever `u`'s load drops or its drain state changes;
 * it costs a Map lookup when no drain is pending.
 */
export class Drains {
  readonly #pending = new Map<Upstream, Drain>()
  readonly #drained: (u: Upstream, why: string) => void

  constructor (drained: (u: Upstream, why: string) => void) {
    this.#drained = drained
  }

  /** A promise for `u`'s drain with window `idleMs` (the upstream is already marked draining). */
  wait (u: Upstream, idleMs: number): Promise<void> {
    return new Promise(resolve => {
      let d = this.#pending.get(u)
      if (d === undefined) {
        d = { waiting: [], idleMs, timer: undefined }
        this.#pending.set(u, d)
      }
      d.waiting.push(resolve)
      d.idleMs = Math.max(d.idleMs, idleMs)
      this.check(u)
    })
  }

  /** The drain was cancelled (undrain): its window stops; its promises wait for the next drain. */
  cancel (u: Upstream): void {
    const d = this.#pending.get(u)
    if (d?.timer !== undefined) {
      clearTimeout(d.timer)
      d.timer = undefined
    }
  }

  check (u: Upstream): void {
    const d = this.#pending.get(u)
    // An undrained upstream keeps its drain pending (until drained again): a socket
    // closing there must not complete it.
    if (d === undefined || u.load > 0 || !(u.draining || u.removed)) return
    // A removed upstream's users are re-placed elsewhere: no window to wait out.
    const wait = u.removed || d.idleMs === 0 ? 0 : u.boundSeenAt + d.idleMs - performance.now()
    if (wait > 0) {
      // Looked at again when the window would end; a bound user back meanwhile moves it.
      d.timer ??= setTimeout(() => { d.timer = undefined; this.check(u) }, Math.ceil(wait))
      d.timer.unref()
      return
    }
    clearTimeout(d.timer)
    this.#pending.delete(u)
    this.#drained(u, d.idleMs === 0 ? 'nothing in flight' : `nothing in flight, no bound user for ${d.idleMs} ms`)
    for (const resolve of d.waiting) resolve()
  }

  /** Nothing is forwarded any more (the balancer closes): every pending drain is complete. */
  completeAll (): void {
    for (const d of this.#pending.values()) {
      clearTimeout(d.timer)
      for (const resolve of d.waiting) resolve()
    }
    this.#pending.clear()
  }
}
