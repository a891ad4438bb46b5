export { affinity } from './middleware.js'
export type { AffinityExpressOptions, AffinityExpressMetricsOptions, AffinityMiddleware, MetricsHandler, StatusPageHandler } from './middleware.js'
export { BodyConsumedError } from './body.js'
