import { affinity } from './plugin.js'

export { affinity }
export type { AffinityFastifyOptions, AffinityFastifyMetricsOptions } from './plugin.js'
export default affinity
