import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Balancer } from '../balancer/balancer.js'
import type { ClientResponse } from '../forward/error-response.js'
import type { ClientRequest, ForwardOptions } from '../forward/http.js'
import { forwardPolicy, type ForwardPolicy, type PolicyWiring, type ProxyOptions } from '../forward/policy.js'
import type { Choice } from '../model/choice.js'
import { logStateChanges, type AffinityLogger } from '../observe/log.js'
import { balancerFrom, type BalancerSource } from './source.js'
import { pendingUpgrade } from './upgrade.js'

/**
 * One proxy as an adapter mounts it: its balancer (caller-owned or built from the
 * shorthand), the WebSocket tunnels it opened, and its state-change log. Adapters
 * decide (balancer.choose) with their own request view, then hand the request
 * here: a request routed as an Upgrade (routeUpgrade) is tunnelled, anything else
 * forwarded. Built once per registration; `proxy` runs per request.
 */
export class Mount {
  readonly balancer: Balancer
  /** Built here from the shorthand: closed with the mount. */
  readonly owned: boolean
  /**
   * The mount's forwarding policy (its ProxyOptions checked once, plus the adapter's
   * wiring): adapters hand it to every request as `ForwardOptions.policy`.
   */
  readonly policy: ForwardPolicy
  readonly #tunnels = new Set<Duplex>()
  #stopLogging: (() => void) | undefined

  constructor (source: BalancerSource, proxy: ProxyOptions<any, any> = {}, wiring?: PolicyWiring) {
    // Checked before a balancer is built: a bad option must not leave pools open.
    this.policy = forwardPolicy(proxy, wiring)
    const { balancer, owned } = balancerFrom(source)
    this.balancer = balancer
    this.owned = owned
  }

  /** Upstream state changes to `logger` (down and panic at warn, the rest at info) until close(). */
  logTo (logger: AffinityLogger): void {
    this.#stopLogging?.()
    this.#stopLogging = logStateChanges(this.balancer, logger)
  }

  /** Forwards a decided request, or tunnels it when it arrived as an Upgrade. */
  proxy (choice: Choice, req: ClientRequest, res: ClientResponse, opts: ForwardOptions): void {
    const pending = pendingUpgrade(req)
    if (pending === undefined) {
      this.balancer.forward(choice, req, res, opts)
      return
    }
    const socket = pending.socket
    this.#tunnels.add(socket)
    socket.once('close', () => this.#tunnels.delete(socket))
    this.balancer.upgrade(choice, req as IncomingMessage, socket, pending.head, opts.path, opts)
  }

  /** Ends the open tunnels: upgraded sockets would keep a server's close() waiting. */
  endTunnels (): void {
    for (const socket of this.#tunnels) socket.destroy()
  }

  /** Ends tunnels, stops logging and, if the balancer was built here, closes it. */
  async close (): Promise<void> {
    this.endTunnels()
    this.#stopLogging?.()
    this.#stopLogging = undefined
    if (this.owned) await this.balancer.close()
  }
}
