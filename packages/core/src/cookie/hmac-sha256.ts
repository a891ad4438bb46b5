import { createHash } from 'node:crypto'

/**
 * HMAC-SHA256 (RFC 2104 over FIPS 180-4 SHA-256) in plain JavaScript, for the one
 * hot path where it pays: verifying a balancer cookie. node:crypto's createHmac
 * costs ≈3.3 µs per call here, mostly object set-up; this one precomputes the
 * key's inner and outer pad states once, so a cookie (a 14-byte message) costs
 * two compression-function calls and no allocation, ≈1 µs (bench/strategies.js,
 * cookie-cold). test/properties.test.ts checks it against node:crypto on random
 * keys and messages and against the RFC 4231 test vectors.
 */
const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
])
const IV = Int32Array.from([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19])

const W = new Int32Array(64)

/** One SHA-256 compression of the 64-byte block at bytes[off…] into state (FIPS 180-4 §6.2.2). */
function compress (state: Int32Array, bytes: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++) {
    const j = off + i * 4
    W[i] = (bytes[j]! << 24) | (bytes[j + 1]! << 16) | (bytes[j + 2]! << 8) | bytes[j + 3]!
  }
  for (let i = 16; i < 64; i++) {
    const a = W[i - 15]!
    const b = W[i - 2]!
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3)
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10)
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0
  }
  let a = state[0]!; let b = state[1]!; let c = state[2]!; let d = state[3]!
  let e = state[4]!; let f = state[5]!; let g = state[6]!; let h = state[7]!
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const ch = (e & f) ^ (~e & g)
    const t1 = (h + S1 + ch + K[i]! + W[i]!) | 0
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const maj = (a & b) ^ (a & c) ^ (b & c)
    const t2 = (S0 + maj) | 0
    h = g; g = f; f = e; e = (d + t1) | 0
    d = c; c = b; b = a; a = (t1 + t2) | 0
  }
  state[0] = (state[0]! + a) | 0; state[1] = (state[1]! + b) | 0
  state[2] = (state[2]! + c) | 0; state[3] = (state[3]! + d) | 0
  state[4] = (state[4]! + e) | 0; state[5] = (state[5]! + f) | 0
  state[6] = (state[6]! + g) | 0; state[7] = (state[7]! + h) | 0
}

const BLOCK = new Uint8Array(128)
const STATE = new Int32Array(8)
const INNER = new Uint8Array(32)

/**
 * Hashes `length` bytes of `data` starting at `off`, continuing from `start` (a state
 * that has already absorbed `prefix` bytes), into `out`.
 */
function finish (start: Int32Array, prefix: number, data: Uint8Array, off: number, length: number, out: Uint8Array): void {
  STATE.set(start)
  let i = 0
  for (; i + 64 <= length; i += 64) compress(STATE, data, off + i)
  // Final block(s): the rest, 0x80, zeros, and the bit length as a 64-bit big-endian integer.
  const rest = length - i
  const blocks = rest + 9 > 64 ? 2 : 1
  const end = blocks * 64
  for (let k = 0; k < rest; k++) BLOCK[k] = data[off + i + k]!
  BLOCK[rest] = 0x80
  for (let k = rest + 1; k < end; k++) BLOCK[k] = 0
  const bits = (prefix + length) * 8
  BLOCK[end - 5] = Math.floor(bits / 2 ** 32) & 255
  BLOCK[end - 4] = (bits >>> 24) & 255
  BLOCK[end - 3] = (bits >>> 16) & 255
  BLOCK[end - 2] = (bits >>> 8) & 255
  BLOCK[end - 1] = bits & 255
  compress(STATE, BLOCK, 0)
  if (blocks === 2) compress(STATE, BLOCK, 64)
  for (let k = 0; k < 8; k++) {
    const v = STATE[k]!
    out[k * 4] = v >>> 24; out[k * 4 + 1] = (v >>> 16) & 255; out[k * 4 + 2] = (v >>> 8) & 255; out[k * 4 + 3] = v & 255
  }
}

export class HmacSha256 {
  readonly #inner = new Int32Array(8)
  readonly #outer = new Int32Array(8)

  constructor (key: Uint8Array) {
    // Keys longer than the block are hashed first (RFC 2104 §2).
    const k = new Uint8Array(64)
    k.set(key.length > 64 ? createHash('sha256').update(key).digest() : key)
    const pad = new Uint8Array(64)
    for (let i = 0; i < 64; i++) pad[i] = k[i]! ^ 0x36
    this.#inner.set(IV)
    compress(this.#inner, pad, 0)
    for (let i = 0; i < 64; i++) pad[i] = k[i]! ^ 0x5c
    this.#outer.set(IV)
    compress(this.#outer, pad, 0)
  }

  /** HMAC-SHA256(key, data[off, off + length)) written into out[0, 32). */
  mac (data: Uint8Array, off: number, length: number, out: Uint8Array): void {
    finish(this.#inner, 64, data, off, length, INNER)
    finish(this.#outer, 64, INNER, 0, 32, out)
  }
}
