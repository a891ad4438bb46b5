export { affinity } from './middleware.js'
export type { AffinityExpressOptions, AffinityMiddleware } from './middleware.js'
export { BodyConsumedError } from './body.js'
