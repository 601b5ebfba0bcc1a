import * as os from 'node:os';
import { modelActivities } from '../activities/models';
import { loadConfig, type Config } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { startActivityWorker, workerMain, type RunningWorker } from './runtime';

/**
 * The models worker: quantization jobs (analyze, quantize, rank sensitive nodes, register). One activity
 * at a time, since each is CPU-bound and holds a whole model in memory; urgent jobs go first by their
 * Temporal priority key.
 */
export function startModelsWorker(cfg: Config): Promise<RunningWorker> {
  return startActivityWorker(cfg, {
    component: 'worker.models', taskQueue: cfg.taskQueues.models, poolSize: 3, maxConcurrent: 1,
    activities: ({ pool, store, log }) => modelActivities({ pool, store, log, tmpDir: os.tmpdir(), inferenceQueue: cfg.taskQueues.inference }),
  });
}

if (require.main === module) {
  const cfg = loadConfig();
  workerMain(cfg, getLogger(cfg, 'worker.models'), () => startModelsWorker(cfg));
}
