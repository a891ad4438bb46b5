/** Text tables and JSON for the CLI's reports. */

export const indent = (lines: string[]): string[] => lines.map(l => `  ${l}`)

/** Columns padded to their widest cell (or, `uniform`, all but the first to the widest of them); `align` has one l or r per column. */
export function table (header: string[], rows: string[][], align: string, uniform = false): string[] {
  let widths = header.map((h, c) => Math.max(h.length, ...rows.map(r => r[c]!.length)))
  if (uniform) {
    const widest = Math.max(...widths.slice(1))
    widths = widths.map((w, c) => (c === 0 ? w : widest))
  }
  const line = (cells: string[]): string => cells.map((x, c) => (align[c] === 'r' ? x.padStart(widths[c]!) : x.padEnd(widths[c]!))).join('  ').trimEnd()
  return [line(header), ...rows.map(line)]
}

/** JSON with arrays of numbers (the matrix rows) kept on one line. */
export function toJson (value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]/g, (_, inner: string) => `[${inner.split(/,\s+/).join(', ')}]`) + '\n'
}

