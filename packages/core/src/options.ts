import { AffinityError, invalidOption } from './errors.js'

/**
 * Option checks shared by every factory (Envoy keeps validation in config.cc beside
 * each *_lb.cc: options become a checked config in one function per factory, and
 * constructors only assemble). Each check returns the value, or its default when
 * the option is absent, and throws an AffinityError naming the option otherwise.
 */

/** An options object (or absent: `{}`): anything else is refused as `name`. */
export function optionsObject<T extends object> (name: string, opts: T | undefined): T {
  if (opts === undefined) return {} as T
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw invalidOption(name, 'expected an options object')
  return opts
}

/**
 * Refuses any key of `opts` not in `known`: a misspelt or unsupported option is an
 * error at start-up, never silently ignored (a `preHandler` meant as a guard that
 * does nothing would be a security hole).
 */
export function knownKeys (where: string, opts: object, known: readonly string[]): void {
  for (const key of Object.keys(opts)) {
    if (!known.includes(key)) throw new AffinityError('AFFINITY_ERR_UNKNOWN_OPTION', key, where, known.join(', '))
  }
}

/** Milliseconds ≥ 0 (or > 0 with `positive`); `zero` says what 0 means, for the message. */
export function milliseconds (name: string, value: unknown, fallback: number, opts: { positive?: boolean, zero?: string } = {}): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (opts.positive === true && value === 0)) {
    throw invalidOption(name, opts.positive === true ? 'expected milliseconds > 0' : `expected milliseconds ≥ 0${opts.zero === undefined ? '' : ` (0: ${opts.zero})`}`)
  }
  return value
}

/** A whole number from `min` to `max`. */
export function wholeNumber (name: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidOption(name, max === Number.MAX_SAFE_INTEGER ? `expected a whole number ≥ ${min}` : `expected a whole number from ${min} to ${max}`)
  }
  return value
}

/** A finite number in [min, max] (`above`: strictly greater than min). */
export function finiteNumber (name: string, value: unknown, fallback: number, range: { min?: number, above?: number, max?: number }, why?: string): number {
  if (value === undefined) return fallback
  const ok = typeof value === 'number' && Number.isFinite(value) &&
    (range.min === undefined || value >= range.min) && (range.above === undefined || value > range.above) && (range.max === undefined || value <= range.max)
  if (!ok) throw invalidOption(name, why ?? describe(range))
  return value as number
}

/** One of `values`. */
export function oneOf<T extends string | boolean> (name: string, value: unknown, fallback: T, values: readonly T[]): T {
  if (value === undefined) return fallback
  if (!values.includes(value as T)) throw invalidOption(name, `expected ${values.map(v => typeof v === 'string' ? `'${v}'` : String(v)).join(', ')}`)
  return value as T
}

/** A boolean. */
export function bool (name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw invalidOption(name, 'expected true or false')
  return value
}

function describe (range: { min?: number, above?: number, max?: number }): string {
  const low = range.above !== undefined ? `> ${range.above}` : range.min !== undefined ? `≥ ${range.min}` : ''
  const high = range.max !== undefined ? `≤ ${range.max}` : ''
  return `expected a number ${[low, high].filter(Boolean).join(' and ')}`.trim()
}
