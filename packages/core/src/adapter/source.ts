import { createBalancer, type Balancer } from '../balancer/balancer.js'
import { isBalancer } from '../balancer/brand.js'
import { BALANCER_OPTIONS, type BalancerOptions } from '../balancer/config.js'
import { invalidOption } from '../errors.js'
import { knownKeys } from '../options.js'

/** What the adapters accept: a balancer the caller owns, or the options to build one. */
export interface BalancerSource extends Partial<BalancerOptions> {
  balancer?: Balancer
}

/**
 * Refuses any option an adapter does not know: its own (`own`), `balancer`, or a
 * balancer option (the shorthand). `where` names the adapter in the message.
 */
export function adapterOptions (where: string, opts: object, own: readonly string[]): void {
  if (opts === null || typeof opts !== 'object') throw invalidOption(where, 'expected an options object')
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
