// Figures: rounding, medians and percentiles, for the tables and the JSON.

/** `x` to `d` decimals; undefined, null and NaN (a figure not measured) pass through. */
export const round = (x, d) => (x === undefined || x === null || Number.isNaN(x) ? x : Number(x.toFixed(d)))

export const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }

/** Percentile (nearest rank) of the first n values of a Float64Array. */
export function percentile (values, n, p) {
  if (n === 0) return undefined
  const s = values.slice(0, n).sort()
  return s[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]
}
