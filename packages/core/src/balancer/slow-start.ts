import type { Upstream } from '../model/upstream.js'

/** The share of its weight an upstream starts with: SPEC's "from 10%", Envoy's min_weight_percent default. */
export const SLOW_START_FLOOR = 0.1
/** Snapshot rebuilds over one window: the ramp goes up in steps of at most 9% of the weight. */
export const SLOW_START_STEPS = 10

/**
 * The share of its configured weight an upstream gets `elapsed` ms into a slow start
 * of `windowMs`: a straight line from 10% at the start to 100% at the end.
 *
 * The anchors: nginx's `slow_start` and HAProxy's `slowstart` grow the weight
 * linearly from (almost) zero; Envoy's `slow_start_config` gives
 * `max(min_weight_percent = 10%, (t / window) ^ (1 / aggression))`, linear with its
 * default aggression of 1 but flat at 10% for the first tenth of the window. Here the
 * line starts at 10% rather than 0: from its first moment the upstream takes a real
 * share, so it warms up on real traffic (near zero it would hardly be picked, and
 * a problem would show only later, under more load) and its health is exercised at
 * once; and it leaves 10% at once rather than after a flat tenth of the window,
 * which is what SPEC's "from 10% to 100% over the window" says. No aggression
 * knob: a curved ramp is for runtimes with long JIT warm-ups, and one option fewer is
 * one thing fewer to get wrong; an app that needs it can use a longer window.
 */
export function rampFactor (elapsed: number, windowMs: number): number {
  if (elapsed >= windowMs) return 1
  return SLOW_START_FLOOR + (1 - SLOW_START_FLOOR) * Math.max(0, elapsed) / windowMs
}

/**
 * Slow start (`slowStartMs`): an upstream that is added, or comes back up from
 * down, ramps its effective weight over the window (rampFactor). Snapshots are
 * immutable, so the ramp is a few rebuilds: while anything ramps, one unref'd timer
 * fires every window / SLOW_START_STEPS and the balancer builds a new snapshot with
 * the factors of that moment (`factors()`), one rebuild for every upstream ramping
 * at once. Never at the balancer's start (HAProxy: "not applied at process start"):
 * the first membership takes traffic as it is.
 */
export class SlowStart {
  readonly windowMs: number
  /** Ramping upstreams and when (performance.now()) their ramp began. */
  readonly #started = new Map<Upstream, number>()
  /** Called after each step with every upstream that ramped in it, and its factor (1: done). */
  readonly #step: (steps: ReadonlyArray<[Upstream, number]>) => void
  #timer: NodeJS.Timeout | undefined

  constructor (windowMs: number, step: (steps: ReadonlyArray<[Upstream, number]>) => void) {
    this.windowMs = windowMs
    this.#step = step
  }

  /** `u` starts (or restarts) its ramp now; nothing when slow start is off. Call before the snapshot that admits it. */
  start (u: Upstream): boolean {
    if (this.windowMs === 0) return false
    this.#started.set(u, performance.now())
    if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#tick, Math.max(1, this.windowMs / SLOW_START_STEPS))
      this.#timer.unref()
    }
    return true
  }

  /** `u` is gone: its ramp ends. */
  stop (u: Upstream): void {
    this.#started.delete(u)
  }

  /** Each ramping upstream's factor now, for the next snapshot; undefined when none ramps (the usual case). */
  factors (): ReadonlyMap<Upstream, number> | undefined {
    if (this.#started.size === 0) return undefined
    const now = performance.now()
    const factors = new Map<Upstream, number>()
    for (const [u, at] of this.#started) factors.set(u, rampFactor(now - at, this.windowMs))
    return factors
  }

  close (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#started.clear()
  }

  readonly #tick = (): void => {
    this.#timer = undefined
    const now = performance.now()
    const steps: Array<[Upstream, number]> = []
    for (const [u, at] of this.#started) {
      const f = rampFactor(now - at, this.windowMs)
      steps.push([u, f])
      if (f === 1) this.#started.delete(u)
    }
    if (this.#started.size > 0) {
      this.#timer = setTimeout(this.#tick, Math.max(1, this.windowMs / SLOW_START_STEPS))
      this.#timer.unref()
    }
    if (steps.length > 0) this.#step(steps)
  }
}
