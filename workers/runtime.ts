import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { getLogger, temporalLogger, type Logger } from '../src/clients/logger';
import { databaseUrlOf, type Config } from '../src/clients/config';
import { createObjectStore, type ObjectStore } from '../src/clients/minio';
import { createPool, type Pool } from '../src/clients/pg';

let installed = false;

/** Routes the Temporal SDK's own logs (worker, workflow and activity loggers) into pino. Once per process. */
export function installRuntimeLogger(cfg: Config): void {
  if (installed) return;
  installed = true;
  Runtime.install({ logger: temporalLogger(getLogger(cfg, 'temporal')), shutdownSignals: [] });
}

/** What every worker process holds: its logger, a Postgres pool, the object store and a Temporal connection. */
export interface WorkerClients {
  log: Logger;
  pool: Pool;
  store: ObjectStore;
  connection: NativeConnection;
  close(): Promise<void>;
}

export async function connectWorkerClients(cfg: Config, component: string, poolSize: number): Promise<WorkerClients> {
  installRuntimeLogger(cfg);
  const log = getLogger(cfg, component);
  const pool = createPool(databaseUrlOf(cfg), poolSize);
  const connection = await NativeConnection.connect({ address: cfg.temporal.address }).catch(async (err: unknown) => {
    await pool.end().catch(() => undefined);
    throw err;
  });
  return {
    log, pool, store: createObjectStore(cfg.minio), connection,
    async close() {
      await connection.close().catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
}

export interface RunningWorker {
  worker: Worker;
  /** Resolves when the worker has drained and its connections are closed. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/** Runs `worker` until shut down, then `cleanup` (connections, pools, caches). */
export function runWorker(worker: Worker, cleanup: () => Promise<void>): RunningWorker {
  const done = worker.run().finally(cleanup);
  return {
    worker,
    done,
    async shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}

/** The entry point of a worker process: start, drain on SIGINT/SIGTERM within the grace time, exit. */
export function workerMain(cfg: Config, log: Logger, start: () => Promise<RunningWorker>): void {
  start()
    .then((w) => {
      for (const sig of ['SIGINT', 'SIGTERM'] as const) {
        process.once(sig, () => {
          log.info({ signal: sig, graceMs: cfg.worker.shutdownGraceMs }, 'shutting down: finishing in-flight work');
          void w.shutdown();
        });
      }
      return w.done;
    })
    .then(() => process.exit(0))
    .catch((err: unknown) => {
      log.fatal({ err }, 'worker failed');
      process.exit(1);
    });
}

/**
 * A worker that only runs activities on one queue (review, models): clients, the worker, and a clean stop.
 * The activities are built from the worker's clients.
 */
export async function startActivityWorker(cfg: Config, o: {
  component: string; taskQueue: string; poolSize: number; maxConcurrent?: number;
  activities: (c: WorkerClients) => object;
}): Promise<RunningWorker> {
  const clients = await connectWorkerClients(cfg, o.component, o.poolSize);
  const worker = await Worker.create({
    connection: clients.connection,
    namespace: cfg.temporal.namespace,
    taskQueue: o.taskQueue,
    activities: o.activities(clients),
    maxConcurrentActivityTaskExecutions: o.maxConcurrent,
    shutdownGraceTime: cfg.worker.shutdownGraceMs,
  }).catch(async (err: unknown) => {
    await clients.close();
    throw err;
  });
  clients.log.info({ taskQueue: o.taskQueue }, `${o.component} started`);
  return runWorker(worker, async () => {
    await clients.close();
    clients.log.info(`${o.component} stopped`);
  });
}
