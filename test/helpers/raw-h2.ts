import net from 'node:net'

/**
 * A deliberately careless HTTP/2 client (h2c, prior knowledge, RFC 9113 §3.3): one
 * request whose header block is written byte for byte as given — uppercase names,
 * connection-specific fields, misplaced pseudo-headers — which node:http2's own
 * client refuses to send. Header fields are HPACK literals without indexing and
 * without Huffman coding (RFC 7541 §6.2.2), names and values under 127 bytes.
 */
export interface RawH2Answer {
  /** RST_STREAM's error code on the request's stream (1: PROTOCOL_ERROR), if it was reset. */
  rstCode?: number
  /** GOAWAY's error code, if the server ended the connection. */
  goawayCode?: number
  /** A response HEADERS frame arrived, with this status when it is a static-table one (RFC 7541 Appendix A). */
  status?: number
}

const FRAME = { HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7 } as const
const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 }

function frame (type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream, 5)
  return Buffer.concat([head, payload])
}

function literal (s: string): Buffer {
  const b = Buffer.from(s, 'latin1')
  if (b.length >= 127) throw new Error('raw-h2 literals are shorter than 127 bytes')
  return Buffer.concat([Buffer.from([b.length]), b])
}

export function rawH2Request (port: number, fields: Array<[string, string]>): Promise<RawH2Answer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let buf = Buffer.alloc(0)
    const done = (a: RawH2Answer): void => { socket.destroy(); resolve(a) }
    socket.on('error', reject)
    socket.on('close', () => resolve({}))
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      while (buf.length >= 9) {
        const length = buf.readUIntBE(0, 3)
        if (buf.length < 9 + length) return
        const type = buf[3]!
        const flags = buf[4]!
        const stream = buf.readUInt32BE(5) & 0x7fffffff
        const payload = buf.subarray(9, 9 + length)
        buf = buf.subarray(9 + length)
        if (type === FRAME.SETTINGS && (flags & 1) === 0) socket.write(frame(FRAME.SETTINGS, 1, 0, Buffer.alloc(0)))
        if (type === FRAME.GOAWAY) { done({ goawayCode: payload.readUInt32BE(4) }); return }
        if (stream !== 1) continue
        if (type === FRAME.RST_STREAM) { done({ rstCode: payload.readUInt32BE(0) }); return }
        if (type === FRAME.HEADERS) {
          const first = payload[0]!
          done({ status: (first & 0x80) !== 0 ? STATIC_STATUS[first & 0x7f] : undefined })
          return
        }
      }
    })
    const block = Buffer.concat(fields.map(([n, v]) => Buffer.concat([Buffer.from([0]), literal(n), literal(v)])))
    socket.write(Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
      frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0)),
      frame(FRAME.HEADERS, 0x5 /* END_STREAM | END_HEADERS */, 1, block),
    ]))
  })
}
