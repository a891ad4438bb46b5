/**
 * fast-check properties as tap assertions, shared by the hostile-input and blame
 * tables: one assertion per property with fast-check's counterexample in the
 * diagnostic, and a time limit that a slow machine may reach without the
 * property silently proving little.
 */
import { inspect } from 'node:util'
import fc from 'fast-check'
import type { Test } from 'tap'

/** A broken invariant, with what was seen. */
export class Violation extends Error {}

export function expect (cond: boolean, message: string, detail?: unknown): asserts cond {
  if (!cond) throw new Violation(detail === undefined ? message : `${message}: ${inspect(detail, { depth: 4, maxStringLength: 400, breakLength: 160 })}`)
}

export interface HoldsOptions {
  numRuns: number
  seed: number
  /** fast-check stops starting new runs after this long (default 40 s). */
  timeLimitMs?: number
  /**
   * Report the first failing case as it is, without shrinking: for properties whose
   * cases share state (one fixture for all runs), where a broken state fails every
   * later case and shrinking would only find the smallest of those.
   */
  endOnFailure?: boolean
}

/** Runs `prop` with fast-check and reports it as one assertion (counterexample in the diagnostic). */
export async function holds<Ts extends [unknown, ...unknown[]]> (t: Test, name: string, prop: fc.IAsyncProperty<Ts>, opts: HoldsOptions): Promise<void> {
  const started = Date.now()
  const r = await fc.check(prop, { numRuns: opts.numRuns, seed: opts.seed, interruptAfterTimeLimit: opts.timeLimitMs ?? 40_000, endOnFailure: opts.endOnFailure ?? false })
  const took = Date.now() - started
  t.ok(!r.failed, `${name} (${r.numRuns} runs, ${took} ms)`, r.failed ? { diagnostic: true, error: String((r.errorInstance as Error | undefined)?.message ?? r.errorInstance), report: fc.defaultReportMessage(r) } : {})
  // A slow machine may stop the property at the time limit; it must still have tried
  // a fair share of its cases, or it proved little.
  if (r.interrupted) t.ok(r.numRuns >= Math.ceil(opts.numRuns / 4), `${name}: interrupted by the time limit after ${r.numRuns} of ${opts.numRuns} runs`)
}
