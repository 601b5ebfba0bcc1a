import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { getLogger, temporalLogger, type Logger } from '../src/clients/logger';
import { databaseUrlOf, type Config } from '../src/clients/config';
import { createObjectStore, type ObjectStore } from '../src/clients/minio';
import { createPool, type Pool } from '../src/clients/pg';
import { dataConverterOf } from '../src/clients/temporal';
import { freePort } from '../src/infra/process';
import { activityMetrics } from '../src/observability/activity-metrics';
import { collectTaskQueueBacklog, type TaskQueueKind } from '../src/observability/collectors';
import { startObservabilityEndpoint } from '../src/observability/endpoint';
import { checkHealth } from '../src/observability/health';
import { flushTracing, installTracing, tracingPlugins } from '../src/observability/tracing';

let runtime: Promise<{ sdkMetricsUrl?: string }> | undefined;

/**
 * Installs the Temporal Runtime once per process: the SDK's own logs (worker, workflow and activity loggers)
 * go into pino and, where this process serves /metrics, the SDK's metrics go to a Prometheus exporter on
 * a private port that /metrics appends.
 */
export function installRuntime(cfg: Config): Promise<{ sdkMetricsUrl?: string }> {
  runtime ??= (async () => {
    const sdkPort = cfg.observability.metricsPort === undefined ? undefined : await freePort();
    Runtime.install({
      logger: temporalLogger(getLogger(cfg, 'temporal')), shutdownSignals: [],
      ...(sdkPort ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${sdkPort}` } } } } : {}),
    });
    return { sdkMetricsUrl: sdkPort ? `http://127.0.0.1:${sdkPort}/metrics` : undefined };
  })();
  return runtime;
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
  await installRuntime(cfg);
  installTracing(cfg, component);
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
      await flushTracing().catch(() => undefined);
    },
  };
}

export interface RunningWorker {
  worker: Worker;
  /** Where this worker's /metrics and /health are served (QCFLOW_METRICS_PORT set). */
  metricsUrl?: string;
  /** Resolves when the worker has drained and its connections are closed. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/** Runs `worker` until shut down, then `cleanup` (connections, pools, caches). */
export function runWorker(worker: Worker, cleanup: () => Promise<void>, metricsUrl?: string): RunningWorker {
  const done = worker.run().finally(cleanup);
  return {
    worker,
    metricsUrl,
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

export interface QueueWorkerOptions {
  taskQueue: string;
  activities: object;
  maxConcurrent?: number;
  /** The workflows bundle's entry, for the queue that runs workflows (qc-cpu). */
  workflowsPath?: string;
}

/**
 * Creates a worker on one task queue with what every qcflow worker has: activity metrics, the shutdown
 * grace time and, where QCFLOW_METRICS_PORT is set, /metrics and /health for this process (stopped with it).
 */
export async function createQueueWorker(cfg: Config, clients: WorkerClients, o: QueueWorkerOptions): Promise<{ worker: Worker; metricsUrl?: string; stopObserving(): Promise<void> }> {
  const options: WorkerOptions = {
    connection: clients.connection,
    namespace: cfg.temporal.namespace,
    taskQueue: o.taskQueue,
    activities: o.activities,
    workflowsPath: o.workflowsPath,
    maxConcurrentActivityTaskExecutions: o.maxConcurrent,
    shutdownGraceTime: cfg.worker.shutdownGraceMs,
    interceptors: { activity: [activityMetrics] },
    plugins: tracingPlugins(),
    dataConverter: dataConverterOf(cfg),
  };
  const worker = await Worker.create(options);
  const { metricsPort, metricsHost } = cfg.observability;
  if (metricsPort === undefined) return { worker, stopObserving: async () => undefined };
  const kinds: TaskQueueKind[] = o.workflowsPath ? ['workflow', 'activity'] : ['activity'];
  const service = clients.connection.workflowService;
  const unwatch = collectTaskQueueBacklog(service, cfg.temporal.namespace, kinds.map((kind) => ({ taskQueue: o.taskQueue, kind })));
  const endpoint = await startObservabilityEndpoint({
    host: metricsHost, port: metricsPort, log: clients.log, sdkMetricsUrl: (await installRuntime(cfg)).sdkMetricsUrl,
    health: () => checkHealth({ pool: clients.pool, store: clients.store, temporal: { service, namespace: cfg.temporal.namespace }, worker: { worker, taskQueue: o.taskQueue, kind: kinds[0]! } }),
    alive: () => worker.getState() !== 'FAILED',
  });
  return {
    worker, metricsUrl: endpoint.url,
    async stopObserving() {
      unwatch();
      await endpoint.close();
    },
  };
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
  const { worker, metricsUrl, stopObserving } = await createQueueWorker(cfg, clients, { taskQueue: o.taskQueue, activities: o.activities(clients), maxConcurrent: o.maxConcurrent })
    .catch(async (err: unknown) => {
      await clients.close();
      throw err;
    });
  clients.log.info({ taskQueue: o.taskQueue }, `${o.component} started`);
  return runWorker(worker, async () => {
    await stopObserving();
    await clients.close();
    clients.log.info(`${o.component} stopped`);
  }, metricsUrl);
}
