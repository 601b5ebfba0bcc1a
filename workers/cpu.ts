import * as os from 'node:os';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { loadConfig, type Config } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { connectWorkerClients, runWorker, workerMain, type RunningWorker } from './runtime';

export type { RunningWorker };

/**
 * The qc-cpu worker: layer 1 (and later 2, 4, 5), staging, dispositions and releases.
 * On shutdown it stops polling and lets in-flight activities run for shutdownGraceMs before cancelling them.
 */
export async function startCpuWorker(cfg: Config): Promise<RunningWorker> {
  const clients = await connectWorkerClients(cfg, 'worker.cpu', cfg.worker.maxConcurrentActivities + 2);
  const { log, pool, store, connection } = clients;
  const worker = await Worker.create({
    connection,
    namespace: cfg.temporal.namespace,
    taskQueue: cfg.taskQueues.cpu,
    workflowsPath: require.resolve('../workflows'),
    activities: createActivities({ pool, store, log, tmpDir: os.tmpdir(), inferenceQueue: cfg.taskQueues.inference }),
    maxConcurrentActivityTaskExecutions: cfg.worker.maxConcurrentActivities,
    shutdownGraceTime: cfg.worker.shutdownGraceMs,
  });
  log.info({ taskQueue: cfg.taskQueues.cpu, namespace: cfg.temporal.namespace }, 'qc-cpu worker started');
  return runWorker(worker, async () => {
    await clients.close();
    log.info('qc-cpu worker stopped');
  });
}

if (require.main === module) {
  const cfg = loadConfig();
  workerMain(cfg, getLogger(cfg, 'worker.cpu'), () => startCpuWorker(cfg));
}
