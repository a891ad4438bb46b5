// What the benchmark measures: the strategies, the targets (proxies) and the --only groups.

export const STRATEGIES = [
  { key: 'roundRobin', label: 'roundRobin()', kind: 'other', sticky: false },
  { key: 'leastConnections', label: 'leastConnections()', kind: 'other', sticky: false },
  { key: 'stickyCookie', label: 'stickyCookie({ secret })', kind: 'other', sticky: true, cookie: true },
  { key: 'stickyIp', label: 'stickyIp()', kind: 'ip', sticky: true },
  { key: 'hashRing', label: "consistentHash({ key: { header: 'x-user' } }) ring", kind: 'hash', sticky: true },
  { key: 'hashMaglev', label: "consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' })", kind: 'hash', sticky: true },
  { key: 'ipHash', label: 'ipHash()', kind: 'ip', sticky: true },
]

/** The strategies the core-on-node:http door runs with: the cheapest pick, and the README's example. */
const CORE_STRATEGIES = ['roundRobin', 'stickyCookie']

/**
 * The Express doors also measured on a server from @affinity/express createServer(app) (req/res
 * born with the app's prototypes: Express's per-request Object.setPrototypeOf is a no-op).
 */
const CREATE_SERVER = ['roundRobin', 'stickyCookie']

/** Every target, in run order. */
export const TARGETS = [
  { name: 'direct', group: 'direct', label: 'direct to one upstream (ceiling)' },
  { name: 'node-hello', group: 'node-hello', label: 'node:http hello world (answers itself, no proxying)' },
  { name: 'floor', group: 'floor', label: 'node:http + undici Pool, round robin, headers copied, bodies piped (the Node floor)' },
  ...STRATEGIES.filter(s => CORE_STRATEGIES.includes(s.key)).map(s => ({ name: `core-${s.key}`, group: 'core', strategy: s, label: `Affinity core on plain node:http ${s.key}` })),
  { name: 'fastify-proxy', group: 'fastify-base', label: 'bare @fastify/http-proxy, round-robin getUpstream' },
  ...STRATEGIES.map(s => ({ name: `fastify-${s.key}`, group: 'fastify', strategy: s, label: `Affinity Fastify ${s.key}` })),
  { name: 'express-hello', group: 'express-hello', label: 'Express 5 hello world (answers itself, no proxying)' },
  { name: 'express-hello+createServer', group: 'express-hello', createServer: true, label: 'Express 5 hello world on createServer(app)' },
  { name: 'express-hpm', group: 'express-base', label: 'Express 5 + http-proxy-middleware 3, round-robin router' },
  { name: 'express-hpm-noagent', group: 'express-base', label: 'Express 5 + http-proxy-middleware 3, defaults (no agent)' },
  ...STRATEGIES.flatMap(s => [
    { name: `express-${s.key}`, group: 'express', strategy: s, label: `Affinity Express ${s.key}` },
    ...(CREATE_SERVER.includes(s.key) ? [{ name: `express-${s.key}+createServer`, group: 'express', strategy: s, createServer: true, label: `Affinity Express ${s.key} on createServer(app)` }] : []),
  ]),
  { name: 'nginx-hash', group: 'nginx', nginx: 'hash', label: 'nginx hash $http_x_user consistent' },
  { name: 'nginx-iphash', group: 'nginx', nginx: 'iphash', label: 'nginx ip_hash' },
]

const GROUPS = {
  affinity: t => t.group === 'fastify' || t.group === 'express' || t.group === 'core',
  core: t => t.group === 'core',
  fastify: t => t.group === 'fastify' || t.group === 'fastify-base',
  express: t => t.group.startsWith('express'),
  nginx: t => t.group === 'nginx',
  baselines: t => ['direct', 'node-hello', 'floor', 'fastify-base', 'express-base', 'express-hello', 'nginx'].includes(t.group),
}

/**
 * The targets --only names (names, globs such as fastify-* or *Cookie, groups), in run
 * order; every target without --only. Throws when a name matches nothing.
 */
export function selectTargets (only) {
  if (only === undefined) return TARGETS
  const chosen = new Set()
  for (const tok of only) {
    const before = chosen.size
    if (GROUPS[tok] !== undefined) for (const t of TARGETS) if (GROUPS[tok](t)) chosen.add(t)
    const re = new RegExp(`^${tok.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i')
    for (const t of TARGETS) if (re.test(t.name)) chosen.add(t)
    if (chosen.size === before && !TARGETS.some(t => re.test(t.name))) throw new Error(`--only: no target matches ${tok} (--list shows them)`)
  }
  return TARGETS.filter(t => chosen.has(t))
}
