const HEX = '0123456789ABCDEF'

/**
 * The path (and query) to send upstream as a request-target (RFC 9112 §3.2) that
 * carries only visible ASCII, as the grammar requires. Every visible ASCII byte is
 * forwarded exactly as the client sent it — a percent-encoding stays as it was
 * (nginx passes $request_uri on the same way), and a malformed one is the
 * upstream's to judge. Anything else is percent-encoded rather than sent raw:
 * - a character up to U+00FF is one byte of the client's request line (Node reads the
 *   request-target as latin1), so raw UTF-8 "café" arrives as "cafÃ©" and goes up as
 *   "caf%C3%A9", what the client should have sent;
 * - a character above U+00FF can only come from a JavaScript string (a route
 *   parameter, a configured prefix) and is encoded as UTF-8 (a lone surrogate as U+FFFD).
 * Costs one scan of the path per request, with no allocation when nothing needs encoding.
 */
export function requestTarget (path: string): string {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f) return encodeFrom(path, i)
  }
  return path
}

function encodeFrom (path: string, start: number): string {
  let out = path.slice(0, start)
  for (let i = start; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c > 0x20 && c < 0x7f) out += path[i]
    else if (c <= 0xff) out += '%' + HEX[c >> 4]! + HEX[c & 15]!
    else {
      const cp = path.codePointAt(i)!
      if (cp > 0xffff) i++
      out += encodeURIComponent(cp >= 0xd800 && cp <= 0xdfff ? '\ufffd' : String.fromCodePoint(cp))
    }
  }
  return out
}
