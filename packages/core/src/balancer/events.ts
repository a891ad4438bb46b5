import { EventEmitter } from 'node:events'
import type { WaitResult } from '../forward/admission.js'
import type { RemapEvent } from '../model/remap.js'
import type { OutcomeKind, UpstreamInfo } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import type { Members } from '../model/members.js'
import type { Changed, PanicInfo } from './membership.js'
import type { PressureInfo } from './pressure.js'

export type BalancerEvent = 'down' | 'up' | 'added' | 'removed' | 'drained' | 'draining' | 'undrained' | 'weight'
export type BalancerListener = (upstream: UpstreamInfo, reason: string) => void
export type RemapListener = (remap: RemapEvent) => void
export type PanicListener = (info: PanicInfo) => void
/** 'discovery-error': the source failed or sent a list that was refused; the membership stays as it was. */
export type DiscoveryErrorListener = (err: Error) => void
/** 'slow-start': an upstream's ramp began, went up a step, or ended (`effectiveWeight` === `upstream.weight`). */
export type SlowStartListener = (upstream: UpstreamInfo, effectiveWeight: number) => void
/** 'pressure': a bounded table evicted entries before their time (at most once a minute per table). */
export type PressureListener = (info: PressureInfo) => void
/** Called once per attempt as it ends; `seconds` from dispatch to the end of the response. */
export type OutcomeListener = (upstream: Upstream, kind: OutcomeKind, seconds: number) => void
/** Called as each wait in an upstream's queue ends: how long, and how it ended. */
export type QueueWaitListener = (upstream: Upstream, seconds: number, result: WaitResult) => void

type AnyEvent = BalancerEvent | 'panic' | 'calm' | 'remap' | 'discovery-error' | 'slow-start' | 'pressure'
type AnyListener = BalancerListener | PanicListener | RemapListener | DiscoveryErrorListener | SlowStartListener | PressureListener

/** The balancer's events, typed: what each event's listener gets, and the order a change announces them in. */
export abstract class BalancerEmitter extends EventEmitter {
  /** The current membership snapshot (the slow-start events read effective weights from it). */
  abstract get members (): Members

  override on (event: 'panic' | 'calm', listener: PanicListener): this
  override on (event: 'remap', listener: RemapListener): this
  override on (event: 'discovery-error', listener: DiscoveryErrorListener): this
  override on (event: 'slow-start', listener: SlowStartListener): this
  override on (event: 'pressure', listener: PressureListener): this
  override on (event: BalancerEvent, listener: BalancerListener): this
  override on (event: AnyEvent, listener: AnyListener): this {
    return super.on(event, listener)
  }

  override once (event: 'panic' | 'calm', listener: PanicListener): this
  override once (event: 'remap', listener: RemapListener): this
  override once (event: 'discovery-error', listener: DiscoveryErrorListener): this
  override once (event: 'slow-start', listener: SlowStartListener): this
  override once (event: 'pressure', listener: PressureListener): this
  override once (event: BalancerEvent, listener: BalancerListener): this
  override once (event: AnyEvent, listener: AnyListener): this {
    return super.once(event, listener)
  }

  /**
   * Emits what a change produced: panic/calm first, then the upstream events (each
   * with `reason`, by default the event's name), then the remap (at fleet scale, a
   * hash strategy's once the change is applied: a few ms later), then the first
   * step of any slow start it began.
   */
  protected announce (changed: Changed, events: ReadonlyArray<[BalancerEvent, Upstream]>, reason?: string): void {
    if (changed.panic !== undefined) this.emit(changed.panic ? 'panic' : 'calm', changed.info)
    for (const [event, u] of events) this.emit(event, u.info(), reason ?? event)
    if (changed.remap !== undefined) this.emit('remap', changed.remap)
    else if (changed.remapLater !== undefined) void changed.remapLater.then(r => this.emit('remap', r))
    for (const [event, u] of events) if (event === 'added' || event === 'up') this.rampStep(u)
  }

  /** A 'slow-start' event for `u` while it ramps, and the one that ends its ramp (`done`). */
  protected rampStep (u: Upstream, done = false): void {
    if (u.removed || this.listenerCount('slow-start') === 0) return
    const w = this.members.weightOf(u)
    if (done || w < u.weight) this.emit('slow-start', u.info(), w)
  }
}
