/**
 * @affinity/core/adapter: what an adapter needs and nothing else. An adapter is
 * wiring: its framework's hooks, its request view (a RouteRequest), its options
 * type; the rest is here. examples/node-http is a whole adapter for plain node:http.
 */
export { adapterOptions, balancerFrom, type BalancerSource, type Unsupported } from './source.js'
export { Mount } from './mount.js'
export { kUpgrade, pendingUpgrade, routeUpgrade, type PendingUpgrade, type UpgradeRequest } from './upgrade.js'
export { debugEnabled, logChoice } from './log.js'
export { metricsAnswer, writeAnswer, type RouteAnswer } from './routes.js'
export { writeSocketError, ProxyError, type ProxyErrorCode } from '../forward/error-response.js'
export { forwardPolicy, PROXY_OPTIONS, type ForwardPolicy, type HeaderFields, type PolicyWiring, type ProxyOptions } from '../forward/policy.js'
export { pathRewriter, type PathRewrite } from '../forward/path-rewrite.js'
export { adminAnswer, ADMIN_BODY_LIMIT, DRAIN_WAIT_MS, type AdminRequest } from './admin.js'
/** Option checks, for packages built on the core (@affinity/redis) to refuse bad options as the core does. */
export { knownKeys, milliseconds, optionsObject, wholeNumber } from '../options.js'
export { BALANCER_OPTIONS } from '../balancer/config.js'
