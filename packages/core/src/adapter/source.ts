import { createBalancer, type Balancer } from '../balancer/balancer.js'
import { isBalancer } from '../balancer/brand.js'
import { BALANCER_OPTIONS, type BalancerOptions } from '../balancer/config.js'
import { AffinityError, invalidOption } from '../errors.js'
import { knownKeys } from '../options.js'

/** What the adapters accept: a balancer the caller owns, or the options to build one. */
export interface BalancerSource extends Partial<BalancerOptions> {
  balancer?: Balancer
}

/**
 * Options of the proxy a user migrates from that an adapter does not take: for each,
 * what to use instead. `from` names that proxy in the message.
 */
export interface Unsupported {
  from: string
  options: Readonly<Record<string, string>>
}

/**
 * Refuses any option an adapter does not know: its own (`own`), `balancer`, or a
 * balancer option (the shorthand). `where` names the adapter in the message. An
 * option of the proxy people migrate from (`unsupported`) gets its own error,
 * AFFINITY_ERR_UNSUPPORTED_OPTION, saying what to use instead: a guard or a rewrite
 * written for the other proxy must never be dropped silently.
 */
export function adapterOptions (where: string, opts: object, own: readonly string[], unsupported?: Unsupported): void {
  if (opts === null || typeof opts !== 'object') throw invalidOption(where, 'expected an options object')
  if (unsupported !== undefined) {
    for (const key of Object.keys(opts)) {
      if (Object.hasOwn(unsupported.options, key) && !own.includes(key)) {
        throw new AffinityError('AFFINITY_ERR_UNSUPPORTED_OPTION', where, unsupported.from, key, unsupported.options[key])
      }
    }
  }
  knownKeys(where, opts, [...own, 'balancer', ...BALANCER_OPTIONS])
}

/**
 * The adapters' ownership rule: a `balancer` passed in belongs to the caller (who
 * closes it); one built here from the shorthand options is `owned` and closed with
 * the app. `source` holds only `balancer` and balancer options (see adapterOptions).
 */
export function balancerFrom (source: BalancerSource): { balancer: Balancer, owned: boolean } {
  const { balancer, ...shorthand } = source
  if (balancer !== undefined) {
    if (!isBalancer(balancer)) throw invalidOption('balancer', 'expected a balancer from createBalancer()')
    const extra = Object.keys(shorthand).find(k => (shorthand as Record<string, unknown>)[k] !== undefined)
    if (extra !== undefined) throw invalidOption('balancer', `pass either \`balancer\` or the shorthand (\`upstreams\`, \`strategy\`, …), not both (\`${extra}\` given too)`)
    return { balancer, owned: false }
  }
  return { balancer: createBalancer(shorthand as BalancerOptions), owned: true }
}
