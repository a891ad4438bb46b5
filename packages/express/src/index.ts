export { affinity } from './middleware.js'
export type { AffinityExpressOptions, AffinityExpressMetricsOptions, AffinityMiddleware, MetricsHandler } from './middleware.js'
export { BodyConsumedError } from './body.js'
