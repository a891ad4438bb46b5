/**
 * MurmurHash3 x86_32 (Austin Appleby, public domain) over the UTF-8 bytes of a
 * string, encoded on the fly so no Buffer is allocated. Hashing the UTF-8 bytes
 * (not UTF-16 code units) keeps results equal to any other murmur3 implementation,
 * so balancers written in other languages can agree with ours.
 */
const C1 = 0xcc9e2d51
const C2 = 0x1b873593

export function murmur3 (key: string, seed = 0): number {
  let h = seed | 0
  let k = 0
  let shift = 0
  let length = 0
  for (let i = 0; i < key.length; i++) {
    let c = key.charCodeAt(i)
    // Encode the code point as UTF-8, one byte at a time, into the 4-byte block.
    let bytes: number
    if (c < 0x80) {
      bytes = c; length += 1
      k |= bytes << shift; shift += 8
      if (shift === 32) { h = mix(h, k); k = 0; shift = 0 }
      continue
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < key.length) {
      const d = key.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++ }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd // lone surrogate: as TextEncoder does
    const seq = c < 0x800
      ? [0xc0 | (c >> 6), 0x80 | (c & 63)]
      : c < 0x10000
        ? [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)]
        : [0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)]
    for (const b of seq) {
      length += 1
      k |= b << shift; shift += 8
      if (shift === 32) { h = mix(h, k); k = 0; shift = 0 }
    }
  }
  if (shift !== 0) {
    k = Math.imul(k, C1); k = (k << 15) | (k >>> 17); k = Math.imul(k, C2)
    h ^= k
  }
  h ^= length
  return fmix32(h)
}

function mix (h: number, k: number): number {
  k = Math.imul(k, C1); k = (k << 15) | (k >>> 17); k = Math.imul(k, C2)
  h ^= k
  h = (h << 13) | (h >>> 19)
  return (Math.imul(h, 5) + 0xe6546b64) | 0
}

/** murmur3's finaliser: a full-avalanche mix of a 32-bit integer. */
export function fmix32 (h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** MurmurHash3 x86_32 of bytes[0, length): the same function, over raw bytes. */
export function murmur3Bytes (bytes: Uint8Array, length: number, seed = 0): number {
  let h = seed | 0
  const blocks = length & ~3
  for (let i = 0; i < blocks; i += 4) {
    h = mix(h, bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))
  }
  let k = 0
  switch (length & 3) {
    case 3: k ^= bytes[blocks + 2]! << 16 // falls through
    case 2: k ^= bytes[blocks + 1]! << 8 // falls through
    case 1:
      k ^= bytes[blocks]!
      k = Math.imul(k, C1); k = (k << 15) | (k >>> 17); k = Math.imul(k, C2)
      h ^= k
  }
  h ^= length
  return fmix32(h)
}

/** murmur3Bytes of the 4 bytes of `v` in network (big-endian) order, without a buffer. */
export function murmur3Uint32BE (v: number, seed = 0): number {
  const k = ((v & 255) << 24) | (((v >>> 8) & 255) << 16) | (((v >>> 16) & 255) << 8) | (v >>> 24)
  return fmix32(mix(seed | 0, k) ^ 4)
}
