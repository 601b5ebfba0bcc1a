import { Runtime, type Worker } from '@temporalio/worker';
import { getLogger, temporalLogger, type Logger } from '../src/clients/logger';
import type { Config } from '../src/clients/config';

let installed = false;

/** Routes the Temporal SDK's own logs (worker, workflow and activity loggers) into pino. Once per process. */
export function installRuntimeLogger(cfg: Config): void {
  if (installed) return;
  installed = true;
  Runtime.install({ logger: temporalLogger(getLogger(cfg, 'temporal')), shutdownSignals: [] });
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
