// Section 2 of bench/strategies.js: keys that change upstream when one upstream leaves or joins.
import { consistentHash, createBalancer, ipHash, murmur3 } from '@affinity/core'
// White-box pieces, through the declared internal entry (not part of the public API).
import { Maglev, Ring } from '@affinity/core/internal'
import { round } from '../numbers.js'
import { KEY_SEED, IP_SEED, MOVE_SEED, prng, randomKey, randomIpv4, upstreamIds, byId, maxOf, minOf, progress, ringTable, maglevTable, table, f3, pct } from './shared.js'


const MOVE_NS = [10, 100]
const MOVE_SETS = 5
const IPHASH_SETS = 3

/** Owner (an index into `universe`) of every key under a table built from `ids`. */
function ownersOf (table, ids, universe, hashes) {
  const map = Int32Array.from(ids, id => universe.indexOf(id))
  const out = new Int32Array(hashes.length)
  for (let k = 0; k < hashes.length; k++) out[k] = map[table.ownerOf(hashes[k])]
  return out
}

function compare (before, after, removed, added) {
  let moved = 0
  let unnecessary = 0
  let onRemoved = 0
  for (let k = 0; k < before.length; k++) {
    const b = before[k]
    const a = after[k]
    if (b === removed) onRemoved++
    if (a === b) continue
    moved++
    // A necessary move: off the removed upstream, or onto the added one.
    if (b !== removed && a !== added) unnecessary++
  }
  return { moved, unnecessary, onRemoved }
}

function movementRow (algo, n, op, K, results) {
  const ideal = op === 'remove' ? 1 / n : 1 / (n + 1)
  const fr = results.map(r => r.moved / K)
  const ratios = fr.map(f => f / ideal)
  const mean = fr.reduce((s, x) => s + x, 0) / fr.length
  const ratio = mean / ideal
  const target = algo === 'maglev' ? undefined : [0.95, 1.05]
  const unnecessary = results.reduce((s, r) => s + r.unnecessary, 0)
  return {
    algorithm: algo,
    n,
    change: op === 'remove' ? `${n} → ${n - 1}` : `${n} → ${n + 1}`,
    sets: results.length,
    moved: round(mean, 5),
    ideal: round(ideal, 5),
    ratio: round(ratio, 4),
    ratioMin: round(minOf(ratios), 4),
    ratioMax: round(maxOf(ratios), 4),
    unnecessary,
    unnecessaryShare: round(unnecessary / (K * results.length), 5),
    target,
    verdict: target === undefined
      ? 'report only'
      : (ratio >= target[0] && ratio <= target[1] ? 'PASS' : 'FAIL') + (unnecessary === 0 ? '' : ', unnecessary moves'),
  }
}

function movementTables (keys) {
  const K = keys.count
  const rows = []
  const pickRemoved = prng(MOVE_SEED)
  for (const algo of ['ring', 'maglev']) {
    const build = algo === 'ring' ? ringTable : maglevTable
    for (const n of MOVE_NS) {
      const rem = []
      const add = []
      for (let s = 0; s < MOVE_SETS; s++) {
        const ids = upstreamIds(s, n)
        const extra = `http://10.0.${s}.${n + 1}:8080`
        const universe = [...ids, extra]
        const before = ownersOf(build(ids), ids, universe, keys.murmur)
        const gone = ids[pickRemoved() % n]
        const less = ids.filter(id => id !== gone)
        rem.push(compare(before, ownersOf(build(less), less, universe, keys.murmur), universe.indexOf(gone), -1))
        const more = [...ids, extra].sort(byId)
        add.push(compare(before, ownersOf(build(more), more, universe, keys.murmur), -1, universe.indexOf(extra)))
      }
      rows.push(movementRow(algo, n, 'remove', K, rem), movementRow(algo, n, 'add', K, add))
      progress(`movement ${algo} N=${n} done`)
    }
  }
  return rows
}

/** ipHash through a real Balancer: choose() for every key, then remove / add an upstream. */
async function movementIpHash (K) {
  const r = prng(IP_SEED)
  const ips = new Array(K)
  for (let k = 0; k < K; k++) ips[k] = randomIpv4(r)
  const pickRemoved = prng(MOVE_SEED + 1)
  const req = { method: 'GET', url: '/', headers: {}, ip: '', cookies: {} }
  const rows = []
  for (const n of MOVE_NS) {
    const rem = []
    const add = []
    for (let s = 0; s < IPHASH_SETS; s++) {
      const ids = upstreamIds(s, n)
      const extra = `http://10.0.${s}.${n + 1}:8080`
      const universe = new Map([...ids, extra].map((id, i) => [id, i]))
      const balancer = createBalancer({ upstreams: ids, strategy: ipHash() })
      const assign = () => {
        const out = new Int32Array(K)
        for (let k = 0; k < K; k++) {
          req.ip = ips[k]
          const u = balancer.choose(req).upstream
          out[k] = u === undefined ? -1 : universe.get(u.id)
        }
        return out
      }
      const before = assign()
      const gone = ids[pickRemoved() % n]
      balancer.remove(gone)
      rem.push(compare(before, assign(), universe.get(gone), -1))
      balancer.add(gone)
      balancer.add(extra)
      add.push(compare(before, assign(), -1, universe.get(extra)))
      await balancer.close()
    }
    rows.push(movementRow('ipHash', n, 'remove', K, rem), movementRow('ipHash', n, 'add', K, add))
    progress(`movement ipHash N=${n} done`)
  }
  return rows
}

/** The strategy (consistentHash through a Balancer) must agree with the table the bench measures. */
async function agreement () {
  let checked = 0
  let mismatches = 0
  for (const algorithm of ['ring', 'maglev']) {
    const ids = upstreamIds(0, 100)
    const table = algorithm === 'ring' ? ringTable(ids) : maglevTable(ids)
    const balancer = createBalancer({ upstreams: ids, strategy: consistentHash({ key: { header: 'x-key' }, algorithm }) })
    const r = prng(KEY_SEED)
    for (let k = 0; k < 20_000; k++) {
      const key = randomKey(r)
      const want = ids[table.ownerOf(murmur3(key))]
      const got = balancer.choose({ method: 'GET', url: '/', headers: { 'x-key': key }, ip: undefined, cookies: {} }).upstream?.id
      checked++
      if (got !== want) mismatches++
    }
    await balancer.close()
  }
  return { checked, mismatches }
}

export async function movement (keys) {
  const rows = movementTables(keys)
  rows.push(...await movementIpHash(keys.count))
  return { keys: keys.count, agreement: await agreement(), rows }
}

export function printMovement (m) {
  return table(
    '2. Movement — share of keys that change upstream when one upstream is removed / added',
    [
      { label: 'algorithm', key: 'algorithm', left: true },
      { label: 'change', key: 'change' },
      { label: 'sets', key: 'sets' },
      { label: 'moved', get: r => pct(r.moved, 3) },
      { label: 'ideal', get: r => pct(r.ideal, 3) },
      { label: 'ratio', get: r => f3(r.ratio) },
      { label: 'ratio range', get: r => `${f3(r.ratioMin)}–${f3(r.ratioMax)}` },
      { label: 'unnecessary', get: r => `${r.unnecessary} (${pct(r.unnecessaryShare, 2)})` },
      { label: 'target', get: r => (r.target ? `${r.target[0].toFixed(2)}–${r.target[1].toFixed(2)}` : undefined) },
      { label: 'verdict', key: 'verdict', left: true },
    ],
    m.rows,
    [
      '',
      `keys: ${m.keys.toLocaleString('en-US')} random 16-hex keys (ring, maglev: Ring/Maglev tables directly) or random IPv4 (ipHash: createBalancer + ipHash(),`,
      `      balancer.remove() / balancer.add(), every key through balancer.choose()). ideal = 1/N on removal, 1/(N+1) on addition.`,
      `ratio = mean moved ÷ ideal over the sets (range = per set; a single set also carries the removed/added node's own share deviation).`,
      `unnecessary = keys that moved although they were not on the removed upstream and did not go to the added one (summed over sets).`,
      `strategy vs table check: consistentHash via balancer.choose() agrees with the Ring/Maglev table on ${m.agreement.checked - m.agreement.mismatches}/${m.agreement.checked} keys.`,
    ],
  )
}
