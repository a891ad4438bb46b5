/** Number formatting shared by the simulator's reports, its charts and the CLI. */

/** 1234567 → '1,234,567'. */
export const thousands = (n: number): string => n.toLocaleString('en-US')

/** 0.1234 → '12.34%'. */
export const percent = (x: number): string => `${(x * 100).toFixed(2)}%`

/** A max/mean style ratio: 1.02345 → '1.023'. */
export const ratio = (x: number): string => x.toFixed(3)

/** Rounded to 6 decimals, for figures kept in JSON reports. */
export const round6 = (x: number): number => Math.round(x * 1e6) / 1e6
