/**
 * stickyCookie: the cookie format, key rotation, renewal and failover (the properties every strategy shares are in
 * strategies.conformance.test.ts; helpers in test/strategies/conformance.ts).
 */
import t from 'tap'
import { Choice, stickyCookie } from '@affinity/core'
import { TokenCodec } from '@affinity/core/internal'
import { SECRET, OLD_SECRET, NEW_SECRET, specs, Cluster, User, users, entry, FOUR } from './strategies/fixtures.js'

t.test('stickyCookie', async t => {
  const e = entry('stickyCookie')
  const COOKIE = /^affinity=([A-Za-z0-9_-]{51}); Path=\/; HttpOnly; SameSite=Lax$/
  const valueOf = (setCookie: string): string => /^[^=]+=([^;]*)/.exec(setCookie)![1]!
  const codec = new TokenCodec([SECRET])
  const nowSec = (): number => Math.floor(Date.now() / 1000)

  t.test('exactly one Set-Cookie on a first visit, none on later valid visits', t => {
    const c = new Cluster(t, stickyCookie({ secret: SECRET }), specs(...FOUR))
    for (const u of users(e, 20)) {
      const first = c.choose(u)
      t.match(first.setCookie, COOKIE, 'one balancer cookie with the default attributes')
      t.equal(first.setCookie!.split('affinity=').length, 2, 'a single cookie, not several')
      t.equal(first.reason, 'assigned')
      for (let i = 0; i < 3; i++) {
        const next = c.choose(u)
        t.equal(next.upstream?.id, first.upstream?.id)
        t.equal(next.setCookie, undefined, 'no Set-Cookie on a valid visit')
        t.equal(next.reason, 'sticky')
      }
    }
    t.end()
  })

  t.test('attributes: Secure only over https with secure: auto; options', t => {
    const auto = new Cluster(t, stickyCookie({ secret: SECRET }), specs(...FOUR))
    t.match(auto.choose(new User(e, 1, { protocol: 'https' })).setCookie, /; HttpOnly; SameSite=Lax; Secure$/, 'https → Secure')
    t.notMatch(auto.choose(new User(e, 2, { protocol: 'http' })).setCookie, /Secure/, 'http → no Secure')
    t.notMatch(auto.choose(new User(e, 3)).setCookie, /Secure/, 'unknown protocol → no Secure')
    const always = new Cluster(t, stickyCookie({ secret: SECRET, secure: true }), specs(...FOUR))
    t.match(always.choose(new User(e, 4, { protocol: 'http' })).setCookie, /; Secure$/, 'secure: true → always')
    const never = new Cluster(t, stickyCookie({ secret: SECRET, secure: false }), specs(...FOUR))
    t.notMatch(never.choose(new User(e, 5, { protocol: 'https' })).setCookie, /Secure/, 'secure: false → never')
    const custom = new Cluster(t, stickyCookie({ secret: SECRET, name: 'sid', path: '/app', domain: 'example.com', maxAge: 3600, httpOnly: false, sameSite: 'strict' }), specs(...FOUR))
    const sc = custom.choose(new User(e, 6)).setCookie!
    t.match(sc, /^sid=[A-Za-z0-9_-]{51}; Path=\/app; Domain=example\.com; Max-Age=3600; SameSite=Strict$/, 'name, path, domain, maxAge, httpOnly, sameSite')
    const token = new TokenCodec([SECRET]).verify(valueOf(sc))
    t.ok(token !== undefined && Math.abs(token.expires - (nowSec() + 3600)) <= 2, 'the signed expiry matches Max-Age')
    t.end()
  })

  t.test('garbage, forged and other-secret cookies are ignored and replaced', t => {
    const c = new Cluster(t, stickyCookie({ secret: SECRET }), specs(...FOUR))
    const other = new Cluster(t, stickyCookie({ secret: NEW_SECRET }), specs(...FOUR))
    const u = new User(e, 1)
    const good = valueOf(c.choose(u).setCookie!)
    const elsewhere = valueOf(other.choose(new User(e, 2)).setCookie!)
    const bytes = Buffer.from(good, 'base64url')
    const flippedChar = good.slice(0, 20) + (good[20] === 'A' ? 'B' : 'A') + good.slice(21)
    const cases: Array<[string, string]> = [
      ['garbage', 'garbage'], ['empty', ''], ['too long', good + 'A'], ['not base64url', good.slice(0, 50) + '='],
      ['one character changed', flippedChar], ['another secret', elsewhere],
    ]
    for (const [label, value] of cases) {
      const v = new User(e, 3)
      v.jar.affinity = value
      const ch = c.choose(v)
      t.ok(ch.upstream !== undefined, `${label}: still served`)
      t.match(ch.setCookie, COOKIE, `${label}: a fresh cookie`)
      t.not(ch.reason, 'sticky', `${label}: not treated as sticky`)
      const again = c.choose(v)
      t.ok(again.reason === 'sticky' && again.setCookie === undefined && again.upstream === ch.upstream, `${label}: the fresh cookie sticks`)
    }
    // Every single-byte change of a genuine token: never honoured as it stands.
    let honoured = 0
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const b = Buffer.from(bytes)
        b[i]! ^= mask
        const v = new User(e, 4)
        v.jar.affinity = b.toString('base64url')
        const ch = c.choose(v)
        if (ch.reason === 'sticky' || ch.setCookie === undefined) honoured++
      }
    }
    t.equal(honoured, 0, 'no single-byte change of a token is honoured')
    t.end()
  })

  t.test('the value names no upstream URL, host, port or id', t => {
    const ids = ['app-server-1', 'app-server-2', 'app-server-3']
    const c = new Cluster(t, stickyCookie({ secret: SECRET }), specs(...ids))
    const values = new Map<string, string[]>()
    for (const u of users(e, 60)) {
      const ch = c.choose(u)
      const list = values.get(ch.upstream!.id) ?? []
      list.push(valueOf(ch.setCookie!))
      values.set(ch.upstream!.id, list)
    }
    t.same([...values.keys()].sort(), ids, 'users on every upstream')
    let leaks = 0
    for (const id of ids) {
      const up = c.get(id)
      const { host, port, origin } = new URL(up.url)
      const needles = [id, up.url, origin, host, port, '127.0.0.1', 'app-server'].map(s => s.toLowerCase())
      for (const value of values.get(id)!) {
        const raw = Buffer.from(value, 'base64url')
        const hay = [value, raw.toString('latin1'), raw.toString('utf8'), Buffer.from(value, 'base64').toString('latin1')].map(s => s.toLowerCase())
        for (const h of hay) for (const n of needles) if (h.includes(n)) leaks++
        // The id's bytes in hex. (Not every needle: a 5-digit port turns up in the hex of
        // random bytes about once in 200 runs by chance alone; as text it would show above.)
        if (raw.toString('hex').includes(Buffer.from(id).toString('hex'))) leaks++
      }
      const [v1, v2] = values.get(id)!
      if (v1 !== undefined && v2 !== undefined) {
        t.not(v1, v2, `two cookies for ${id} differ`)
        t.not(Buffer.from(v1, 'base64url').subarray(14, 22).toString('hex'), Buffer.from(v2, 'base64url').subarray(14, 22).toString('hex'), `and their masked tags differ (${id})`)
      }
    }
    t.equal(leaks, 0, 'nothing identifying, raw or decoded')
    t.end()
  })

  t.test('key rotation: an old-secret cookie is honoured and re-issued', t => {
    const old = new Cluster(t, stickyCookie({ secret: OLD_SECRET }), specs(...FOUR))
    const rotated = new Cluster(t, stickyCookie({ secret: [NEW_SECRET, OLD_SECRET] }), specs(...FOUR))
    const newOnly = new Cluster(t, stickyCookie({ secret: NEW_SECRET }), specs(...FOUR))
    for (const u of users(e, 8)) {
      const first = old.choose(u)
      const oldValue = u.jar.affinity!
      const ch = rotated.choose(u)
      t.equal(ch.upstream?.id, first.upstream?.id, 'same upstream after rotation')
      t.equal(ch.reason, 'sticky')
      t.match(ch.setCookie, COOKIE, 're-issued')
      const reissued = valueOf(ch.setCookie!)
      t.equal(new TokenCodec([NEW_SECRET]).verify(reissued)?.secret, 0, 'the new cookie is signed by the new secret')
      t.equal(new TokenCodec([OLD_SECRET]).verify(reissued), undefined, 'and not by the old one')
      const next = rotated.choose(u)
      t.ok(next.setCookie === undefined && next.upstream === ch.upstream, 'then no more Set-Cookie')
      const stranger = new User(e, 99)
      stranger.jar.affinity = oldValue
      t.equal(newOnly.choose(stranger).reason, 'assigned', 'once the old secret is dropped, its cookies are not honoured')
    }
    t.end()
  })

  t.test('expiry: inside the signed value, checked by the balancer, renewed at half-life', t => {
    const c = new Cluster(t, stickyCookie({ secret: SECRET, maxAge: 3600 }), specs(...FOUR))
    const visit = (value: string): Choice => {
      const u = new User(e, 1)
      u.jar.affinity = value
      return c.choose(u)
    }
    const tagB = codec.tag(0, 'b')
    const valid = visit(codec.issue(tagB, nowSec() + 3000))
    t.ok(valid.upstream?.id === 'b' && valid.reason === 'sticky' && valid.setCookie === undefined, 'unexpired: sticky, no renewal')
    const expired = visit(codec.issue(tagB, nowSec() - 5))
    t.ok(expired.reason === 'assigned' && expired.setCookie !== undefined, 'expired: re-pinned with a fresh cookie')
    t.ok(Math.abs(codec.verify(valueOf(expired.setCookie!))!.expires - (nowSec() + 3600)) <= 2, 'the fresh cookie expires in maxAge')
    const renew = visit(codec.issue(tagB, nowSec() + 600))
    t.ok(renew.upstream?.id === 'b' && renew.reason === 'sticky', 'under half its age left: still sticky')
    t.ok(renew.setCookie !== undefined && codec.verify(valueOf(renew.setCookie))!.expires >= nowSec() + 3598, 'and renewed for maxAge')
    const ghost = visit(codec.issue(codec.tag(0, 'ghost'), 0))
    t.ok(ghost.upstream !== undefined && ghost.setCookie !== undefined && ghost.reason === 'failover', 'a valid cookie for an unknown upstream: re-pinned as a failover')
    const session = visit(codec.issue(tagB, 0))
    t.ok(session.upstream?.id === 'b' && session.reason === 'sticky', 'a session cookie from before maxAge was set: still sticky')
    t.ok(session.setCookie !== undefined && codec.verify(valueOf(session.setCookie))!.expires >= nowSec() + 3598, 'and re-issued with an expiry inside')

    // A cookie verified (and cached) earlier still expires.
    const u = new User(e, 2)
    const first = c.choose(u)
    t.equal(c.choose(u).setCookie, undefined)
    const realNow = Date.now
    try {
      Date.now = () => realNow() + 3601_000
      const late = c.choose(u)
      t.ok(late.reason === 'assigned' && late.setCookie !== undefined, 'after maxAge the cached cookie is expired')
    } finally {
      Date.now = realNow
    }
    t.ok(first.upstream !== undefined)
    t.end()
  })

  t.test('failover rewrites the cookie; a removed upstream too', t => {
    const c = new Cluster(t, stickyCookie({ secret: SECRET }), specs(...FOUR))
    const u = new User(e, 1)
    const home = c.pick(u)!
    c.down(home)
    const moved = c.choose(u)
    t.ok(moved.upstream !== undefined && moved.upstream.id !== home && moved.reason === 'failover', 'failover')
    t.match(moved.setCookie, COOKIE, 'new cookie')
    const second = moved.upstream!.id
    t.equal(c.choose(u).reason, 'sticky', 'the new cookie sticks')
    c.remove(second)
    const again = c.choose(u)
    t.ok(again.upstream !== undefined && again.upstream.id !== second && again.upstream.id !== home, 'removed upstream: re-pinned')
    t.match(again.setCookie, COOKIE)
    // A failed connection (choice.tried) re-pins too, and the cookie follows.
    const ch = c.choose(u)
    const failed = ch.upstream!
    const retried = c.repick(u, ch, failed)
    t.ok(retried !== undefined && retried !== failed && ch.reason === 'failover' && ch.setCookie !== undefined, 'retry: re-pinned with a cookie')
    t.equal(c.pick(u), retried!.id, 'the user stays on the upstream that answered')
    t.end()
  })
})
