import { Worker } from '@temporalio/worker';
import { reviewTaskActivities } from '../activities';
import { loadConfig, type Config } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { connectWorkerClients, runWorker, workerMain, type RunningWorker } from './runtime';

/**
 * The qc-review worker: runs the human-task activity that records a review task and waits, without a slot,
 * for a reviewer to complete it. Cheap, so one per deployment is plenty; a dead one only delays new tasks.
 */
export async function startReviewWorker(cfg: Config): Promise<RunningWorker> {
  const clients = await connectWorkerClients(cfg, 'worker.review', 4);
  const { log, pool, connection } = clients;
  const worker = await Worker.create({
    connection,
    namespace: cfg.temporal.namespace,
    taskQueue: cfg.taskQueues.review,
    activities: reviewTaskActivities({ pool, log }),
    shutdownGraceTime: cfg.worker.shutdownGraceMs,
  });
  log.info({ taskQueue: cfg.taskQueues.review }, 'qc-review worker started');
  return runWorker(worker, async () => {
    await clients.close();
    log.info('qc-review worker stopped');
  });
}

if (require.main === module) {
  const cfg = loadConfig();
  workerMain(cfg, getLogger(cfg, 'worker.review'), () => startReviewWorker(cfg));
}
