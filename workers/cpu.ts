import * as os from 'node:os';
import { createActivities } from '../activities';
import { loadConfig, type Config } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { createTemporalClient } from '../src/clients/temporal';
import { connectWorkerClients, createQueueWorker, runWorker, workerMain, type RunningWorker } from './runtime';

export type { RunningWorker };

/**
 * The qc-cpu worker: every workflow, and the activities of staging, layers 1, 2, 4 and 5, reviews' bookkeeping and releases.
 * On shutdown it stops polling and lets in-flight activities run for shutdownGraceMs before cancelling them.
 */
export async function startCpuWorker(cfg: Config): Promise<RunningWorker> {
  const clients = await connectWorkerClients(cfg, 'worker.cpu', cfg.worker.maxConcurrentActivities + 2);
  const { log, pool, store } = clients;
  // startReviews starts humanReview workflows, which takes a client (the worker's NativeConnection cannot).
  const temporal = await createTemporalClient(cfg).catch(async (err: unknown) => {
    await clients.close();
    throw err;
  });
  const { worker, metricsUrl, stopObserving } = await createQueueWorker(cfg, clients, {
    taskQueue: cfg.taskQueues.cpu,
    workflowsPath: require.resolve('../workflows'),
    activities: createActivities({ pool, store, log, tmpDir: os.tmpdir(), inferenceQueue: cfg.taskQueues.inference, temporal: temporal.client, reviewQueue: cfg.taskQueues.review }),
    maxConcurrent: cfg.worker.maxConcurrentActivities,
  }).catch(async (err: unknown) => {
    await temporal.connection.close().catch(() => undefined);
    await clients.close();
    throw err;
  });
  log.info({ taskQueue: cfg.taskQueues.cpu, namespace: cfg.temporal.namespace }, 'qc-cpu worker started');
  return runWorker(worker, async () => {
    await stopObserving();
    await temporal.connection.close().catch(() => undefined);
    await clients.close();
    log.info('qc-cpu worker stopped');
  }, metricsUrl);
}

if (require.main === module) {
  const cfg = loadConfig();
  workerMain(cfg, getLogger(cfg, 'worker.cpu'), () => startCpuWorker(cfg));
}
