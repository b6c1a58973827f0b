// Our built worker (build/), metered for the benchmark's billing table (see meter.mjs).
import worker, { SyncBackendDO as Inner } from '../../../build/index.js'
import { meteredObject, meteredWorker } from './meter.mjs'

export const SyncBackendDO = meteredObject(Inner)
export default meteredWorker(worker)
