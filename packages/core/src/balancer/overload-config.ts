import type { QueueConfig, RetryBudgetConfig } from '../forward/admission.js'
import { invalidOption } from '../errors.js'
import { finiteNumber, knownKeys, milliseconds, optionsObject, wholeNumber } from '../options.js'

export interface QueueOptions {
  /** Requests waiting per upstream at most (HAProxy `maxqueue`); more are answered 503 at once. */
  max: number
  /** The longest a request waits (HAProxy `timeout queue`); past it, 503. */
  timeoutMs: number
}

export interface RetryBudgetOptions {
  /** Failover retries under way ≤ this percentage of requests in flight and queued (default 20). */
  percent?: number
  /** …but at least this many at once (default 3). */
  min?: number
}

/** The overload options of BalancerOptions (README, "Overload"). */
export interface OverloadOptions {
  /** Each upstream's `maxInFlight` unless its entry sets its own (HAProxy `default-server maxconn`). */
  maxInFlight?: number
  /** Each upstream's `maxWebSockets` unless its entry sets its own. */
  maxWebSockets?: number
  /** Requests wait for a slot at an upstream at `maxInFlight`; off when absent (they get 503 at once). */
  queue?: QueueOptions
  /** Envoy's retry_budget: failover retries across the balancer ≤ max(min, percent % of requests in flight); off when absent. */
  retryBudget?: RetryBudgetOptions
}

export interface OverloadConfig {
  maxInFlight: number
  maxWebSockets: number
  queue: QueueConfig | undefined
  retryBudget: RetryBudgetConfig | undefined
  /** Seconds for Retry-After on a 503 for capacity: about as long as a request may wait. */
  retryAfter: number
}

export function overloadConfig (opts: OverloadOptions): OverloadConfig {
  const queue = queueConfig(opts.queue)
  return {
    maxInFlight: limit('maxInFlight', opts.maxInFlight),
    maxWebSockets: limit('maxWebSockets', opts.maxWebSockets),
    queue,
    retryBudget: retryBudgetConfig(opts.retryBudget),
    retryAfter: queue === undefined ? 1 : Math.max(1, Math.ceil(queue.timeoutMs / 1000)),
  }
}

/** A limit: a whole number ≥ 1, or none (Infinity). */
function limit (name: string, value: unknown): number {
  return value === undefined ? Infinity : wholeNumber(name, value, 0, 1)
}

function queueConfig (opts: QueueOptions | undefined): QueueConfig | undefined {
  if (opts === undefined) return undefined
  const q = optionsObject('queue', opts)
  knownKeys('queue', q, ['max', 'timeoutMs'])
  // Both are required: how much waits and for how long are the two decisions a queue is.
  if (q.max === undefined || q.timeoutMs === undefined) throw invalidOption('queue', 'expected { max, timeoutMs }: requests waiting per upstream at most, and for how long')
  return {
    max: wholeNumber('queue.max', q.max, 0, 1),
    timeoutMs: milliseconds('queue.timeoutMs', q.timeoutMs, 0, { positive: true }),
  }
}

function retryBudgetConfig (opts: RetryBudgetOptions | undefined): RetryBudgetConfig | undefined {
  if (opts === undefined) return undefined
  const b = optionsObject('retryBudget', opts)
  knownKeys('retryBudget', b, ['percent', 'min'])
  return {
    percent: finiteNumber('retryBudget.percent', b.percent, 20, { min: 0, max: 100 }, 'expected a percentage from 0 to 100'),
    min: wholeNumber('retryBudget.min', b.min, 3, 0),
  }
}
