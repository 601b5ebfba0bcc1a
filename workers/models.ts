import * as os from 'node:os';
import { Worker } from '@temporalio/worker';
import { modelActivities } from '../activities/models';
import { loadConfig, type Config } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { connectWorkerClients, runWorker, workerMain, type RunningWorker } from './runtime';

/**
 * The models worker: quantization jobs (analyze, quantize, rank sensitive nodes, register). One activity
 * at a time, since each is CPU-bound and holds a whole model in memory; urgent jobs go first by their
 * Temporal priority key.
 */
export async function startModelsWorker(cfg: Config): Promise<RunningWorker> {
  const clients = await connectWorkerClients(cfg, 'worker.models', 3);
  const { log, pool, store, connection } = clients;
  const worker = await Worker.create({
    connection,
    namespace: cfg.temporal.namespace,
    taskQueue: cfg.taskQueues.models,
    activities: modelActivities({ pool, store, log, tmpDir: os.tmpdir(), inferenceQueue: cfg.taskQueues.inference }),
    maxConcurrentActivityTaskExecutions: 1,
    shutdownGraceTime: cfg.worker.shutdownGraceMs,
  });
  log.info({ taskQueue: cfg.taskQueues.models }, 'models worker started');
  return runWorker(worker, async () => {
    await clients.close();
    log.info('models worker stopped');
  });
}

if (require.main === module) {
  const cfg = loadConfig();
  workerMain(cfg, getLogger(cfg, 'worker.models'), () => startModelsWorker(cfg));
}
