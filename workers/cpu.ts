import * as os from 'node:os';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { loadConfig, type Config } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { createObjectStore } from '../src/clients/minio';
import { createPool } from '../src/clients/pg';
import { installRuntimeLogger, runWorker, workerMain, type RunningWorker } from './runtime';

export type { RunningWorker };

/**
 * The qc-cpu worker: layer 1 (and later 2, 4, 5), staging, dispositions and releases.
 * On shutdown it stops polling and lets in-flight activities run for shutdownGraceMs before cancelling them.
 */
export async function startCpuWorker(cfg: Config): Promise<RunningWorker> {
  installRuntimeLogger(cfg);
  const log = getLogger(cfg, 'worker.cpu');
  if (!cfg.databaseUrl) throw new Error('DATABASE_URL is not set: start the stack with `qcflow dev` or point DATABASE_URL at Postgres');
  const pool = createPool(cfg.databaseUrl, cfg.worker.maxConcurrentActivities + 2);
  const store = createObjectStore(cfg.minio);
  const connection = await NativeConnection.connect({ address: cfg.temporal.address });
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
    await connection.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
    log.info('qc-cpu worker stopped');
  });
}

if (require.main === module) {
  const cfg = loadConfig();
  workerMain(cfg, getLogger(cfg, 'worker.cpu'), () => startCpuWorker(cfg));
}
