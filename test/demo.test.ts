import t from 'tap'
// @ts-expect-error the demo is plain JavaScript without type declarations
import { runDemo, report } from '../examples/demo/index.js'

interface Result {
  strategy: string
  shopping: Array<{ user: string, servers: string[], cartSurvived: boolean }>
  ipChange: { from: string, to: string, reason: string, cartSurvived: boolean }
  scaleOut: { moved: number, users: number }
  serverDies: { usersOnIt: number, rePinned: string[], othersMoved: string[], errors: number }
}

t.test('the demo reproduces the strategy comparison from live traffic', async t => {
  const results = await runDemo() as Result[]
  const by = Object.fromEntries(results.map(r => [r.strategy, r]))
  t.same(Object.keys(by), ['roundRobin', 'stickyCookie', 'stickyIp', 'consistentHash', 'ipHash'])

  t.ok(by.roundRobin!.shopping.every(s => s.servers.length > 1 && !s.cartSurvived), 'round robin: every session spread, carts broken')
  for (const k of ['stickyCookie', 'stickyIp', 'consistentHash', 'ipHash']) {
    const r = by[k]!
    t.ok(r.shopping.every(s => s.servers.length === 1 && s.cartSurvived), `${k}: every user on one server, carts intact`)
    t.equal(r.serverDies.errors, 0, `${k}: no error when a server dies`)
    t.equal(r.serverDies.rePinned.length, r.serverDies.usersOnIt, `${k}: every user of the dead server re-pinned`)
    t.same(r.serverDies.othersMoved, [], `${k}: nobody else moved`)
  }
  t.equal(by.stickyCookie!.ipChange.reason, 'sticky', 'the cookie survives an IP change')
  t.equal(by.stickyCookie!.ipChange.from, by.stickyCookie!.ipChange.to)
  t.not(by.stickyIp!.ipChange.reason, 'sticky', 'a new address is a new stick-table binding')
  t.equal(by.stickyCookie!.scaleOut.moved, 0, 'adding a server moves no cookie user')
  t.equal(by.stickyIp!.scaleOut.moved, 0, 'adding a server moves no stick-table user')
  t.ok(by.consistentHash!.scaleOut.moved < by.consistentHash!.scaleOut.users, 'consistent hashing moves only some users')

  const text = report(results) as string
  t.match(text, /\| Alex\s+\| Round Robin\s+\| session spread over .* → ❌/)
  t.match(text, /\| Alex\s+\| Sticky Sessions \(cookie\)\s+\| all requests go to S\d → ✅/)
  t.match(text, /\| Alex\s+\| IP Hashing\s+\| all requests go to S\d → ✅ \(unless IP changes\)/)
})
