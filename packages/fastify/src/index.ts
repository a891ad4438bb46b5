import { affinity } from './plugin.js'

export { affinity }
export type { AffinityFastifyOptions, AffinityFastifyMetricsOptions, AffinityFastifyStatusPageOptions } from './plugin.js'
export type { AffinityFastifyAdminOptions } from './admin.js'
export default affinity
