import { invalidOption } from '../errors.js'

/**
 * http-proxy-middleware's `pathRewrite` (3.x, path-rewriter.ts): a map of regular
 * expressions (as strings) to replacements, of which the first whose expression
 * matches is applied, or a function of the path and the request returning the new
 * path (`undefined`: unchanged; a promise of one is awaited). The path is the
 * request-target below the mount, query included, as http-proxy-middleware gives it.
 */
export type PathRewrite<Req = unknown> =
  | Record<string, string>
  | ((path: string, req: Req) => string | undefined | Promise<string | undefined>)

/** The rewrite, compiled once (regular expressions built at registration), or undefined when there is none. */
export function pathRewriter<Req> (option: PathRewrite<Req> | undefined): ((path: string, req: Req) => string | Promise<string>) | undefined {
  if (option === undefined) return undefined
  if (typeof option === 'function') {
    return (path, req) => {
      const out = option(path, req)
      if (typeof out === 'string') return out
      if (out === undefined) return path
      if (typeof (out as Promise<unknown>).then === 'function') return (out as Promise<string | undefined>).then(p => checked(p, path))
      return checked(out, path)
    }
  }
  if (option === null || typeof option !== 'object' || Array.isArray(option)) {
    throw invalidOption('pathRewrite', 'expected an object of { regexp: replacement } or a function (path, req) => path')
  }
  const rules: Array<[RegExp, string]> = []
  for (const [source, replacement] of Object.entries(option)) {
    if (typeof replacement !== 'string') throw invalidOption(`pathRewrite['${source}']`, 'expected a replacement string')
    let re: RegExp
    try {
      re = new RegExp(source)
    } catch (err) {
      throw invalidOption(`pathRewrite['${source}']`, `not a regular expression (${(err as Error).message})`)
    }
    rules.push([re, replacement])
  }
  if (rules.length === 0) return undefined
  return (path) => {
    for (const [re, replacement] of rules) if (re.test(path)) return path.replace(re, replacement)
    return path
  }
}

function checked (out: unknown, path: string): string {
  if (out === undefined) return path
  if (typeof out !== 'string') throw new TypeError('pathRewrite must return a string (or undefined to keep the path)')
  return out
}
