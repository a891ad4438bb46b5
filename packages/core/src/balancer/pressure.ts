/** A bounded table of the strategy: stickyIp's in-memory stick table, or stickyCookie's verified-token cache. */
export type PressureTable = 'store' | 'tokenCache'

/** With 'pressure': entries of `table` evicted before their time since the last event. */
export interface PressureInfo {
  table: PressureTable
  evicted: number
  /** At most one event per table per this many ms. */
  windowMs: number
}

/** One warning a minute at most, as HAProxy and nginx rate-limit their own alerts. */
export const PRESSURE_WINDOW_MS = 60_000

/**
 * Turns evictions (one call per evicted entry, on the request path) into at most
 * one 'pressure' event per table per window: the first eviction is reported at
 * once, later ones are summed and reported when the window ends (an unref'd timer),
 * so a burst that stops is still told in full, and a steady stream gives one line a
 * minute (observe/log.ts logs it at warn).
 */
export class Pressure {
  readonly #emit: (info: PressureInfo) => void
  readonly #windowMs: number
  readonly #pending: Record<PressureTable, number> = { store: 0, tokenCache: 0 }
  readonly #last: Record<PressureTable, number> = { store: -Infinity, tokenCache: -Infinity }
  readonly #timers: Record<PressureTable, NodeJS.Timeout | undefined> = { store: undefined, tokenCache: undefined }

  constructor (emit: (info: PressureInfo) => void, windowMs = PRESSURE_WINDOW_MS) {
    this.#emit = emit
    this.#windowMs = windowMs
  }

  note (table: PressureTable): void {
    this.#pending[table]++
    if (this.#timers[table] !== undefined) return
    const wait = this.#last[table] + this.#windowMs - performance.now()
    if (wait <= 0) {
      this.#flush(table)
      return
    }
    const timer = setTimeout(() => { this.#timers[table] = undefined; this.#flush(table) }, wait)
    timer.unref()
    this.#timers[table] = timer
  }

  close (): void {
    for (const table of ['store', 'tokenCache'] as const) {
      clearTimeout(this.#timers[table])
      this.#timers[table] = undefined
    }
  }

  #flush (table: PressureTable): void {
    const evicted = this.#pending[table]
    if (evicted === 0) return
    this.#pending[table] = 0
    this.#last[table] = performance.now()
    this.#emit({ table, evicted, windowMs: this.#windowMs })
  }
}
