// The simulated returning users: who they are and the headers their browsers send.
// The PRNG is the simulator's (by path: not part of @affinity/core's public API).
import { hex8, mulberry32 } from '@affinity/core/internal'

const USER_SEED = 0x5eed0101 // fixed, so every run has the same users

/** The users: id, address, app session cookie; balancer cookies are added per target. */
export function makeUsers (count) {
  const r = mulberry32(USER_SEED)
  const users = []
  const seen = new Set()
  while (users.length < count) {
    const v = r()
    let a = (v >>> 24) % 223 + 1 // 1…223, not 127 (loopback: the proxies trust 127.0.0.1)
    if (a === 127 || a === 10) a = 11
    const ip = `${a}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${(v & 255) || 1}`
    if (seen.has(ip)) continue
    seen.add(ip)
    users.push({ id: `user-${hex8(r())}${hex8(r())}`, ip, sid: `${hex8(r())}${hex8(r())}${hex8(r())}${hex8(r())}`, balancerCookie: undefined })
  }
  return users
}

/** The headers a returning browser user sends (plus the balancer cookie, where one was issued). */
export function userHeaders (u) {
  return {
    'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
    accept: 'application/json, text/plain, */*',
    'accept-language': 'en-US,en;q=0.9',
    'accept-encoding': 'gzip, deflate, br',
    'x-user': u.id,
    'x-forwarded-for': u.ip,
    cookie: u.balancerCookie === undefined ? `sid=${u.sid}` : `sid=${u.sid}; ${u.balancerCookie}`,
  }
}
