/**
 * Every error Affinity throws, in one table with a stable `code` that users and
 * tests can match on (the convention of Fastify's FST_ERR_* and undici's UND_ERR_*).
 */
const messages = {
  AFFINITY_ERR_NO_UPSTREAMS: 'at least one upstream is required: pass `upstreams: [url, …]`',
  AFFINITY_ERR_INVALID_URL: 'upstream url %s is not a valid http://, https://, ws:// or wss:// URL',
  AFFINITY_ERR_DUPLICATE_ID: 'upstream id %s is used twice: give each upstream a unique `id`',
  AFFINITY_ERR_INVALID_WEIGHT: 'upstream %s has weight %s: weights must be finite numbers > 0',
  AFFINITY_ERR_UNKNOWN_UPSTREAM: 'no upstream with id %s',
  AFFINITY_ERR_SECRET_REQUIRED: 'stickyCookie needs `secret`: a string (or array, newest first) of at least 32 characters',
  AFFINITY_ERR_SECRET_TOO_SHORT: 'stickyCookie secret #%s has %s characters: use at least 32 random characters',
  AFFINITY_ERR_INVALID_OPTION: 'invalid option `%s`: %s',
  AFFINITY_ERR_UNKNOWN_OPTION: 'unknown option `%s` for %s: the options are %s',
  AFFINITY_ERR_UNSUPPORTED_OPTION: '%s does not support %s\'s option `%s`: %s',
  AFFINITY_ERR_DNS_FAILED: 'DNS discovery: the %s lookup of %s failed (%s); the membership is left as it was',
  AFFINITY_ERR_DNS_EMPTY: 'DNS discovery: %s has no %s (%s); the membership is left as it was',
  AFFINITY_ERR_DNS_SRV_TARGET: 'DNS discovery: SRV targets of %s without an address are left out: %s',
  AFFINITY_ERR_DISCOVERY_UPDATE: 'membership source: %s; the membership is left as it was',
  AFFINITY_ERR_SOURCE_MANAGED: '%s is refused: this balancer\'s membership comes from its source (the next update would undo it); drain(), undrain() and setWeight() still apply',
  AFFINITY_ERR_STRATEGY_IN_USE: 'strategy %s is already bound to another balancer: create one strategy per balancer',
  AFFINITY_ERR_CLOSED: 'the balancer is closed',
  AFFINITY_ERR_PROM_CLIENT_MISSING: 'install prom-client to enable metrics (`npm install prom-client`): it is an optional peer dependency of @affinity/core',
} as const

export type AffinityErrorCode = keyof typeof messages

export class AffinityError extends Error {
  readonly code: AffinityErrorCode
  constructor (code: AffinityErrorCode, ...args: unknown[]) {
    let i = 0
    super(messages[code].replace(/%s/g, () => String(args[i++])))
    this.name = 'AffinityError'
    this.code = code
  }
}

export function invalidOption (name: string, why: string): AffinityError {
  return new AffinityError('AFFINITY_ERR_INVALID_OPTION', name, why)
}
