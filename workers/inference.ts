import * as os from 'node:os';
import { inferenceActivities } from '../activities';
import { evaluationActivities } from '../activities/models';
import { loadConfig, type Config } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { SessionCache } from '../src/clients/onnx-sessions';
import { collectSessionCache } from '../src/observability/collectors';
import { connectWorkerClients, createQueueWorker, runWorker, workerMain, type RunningWorker } from './runtime';

export interface RunningInferenceWorker extends RunningWorker {
  sessions: SessionCache;
}

/**
 * The qc-inference worker: layer 3 on onnxruntime-node and the evaluation of quantized candidates,
 * activities only (workflows run on qc-cpu). Its own
 * concurrency bounds how many batches share the accelerator; one session cache serves them all.
 */
export async function startInferenceWorker(cfg: Config): Promise<RunningInferenceWorker> {
  const clients = await connectWorkerClients(cfg, 'worker.inference', cfg.inference.maxConcurrentActivities + 2);
  const { log, pool, store } = clients;
  const sessions = new SessionCache({
    providers: cfg.inference.providers, intraOpThreads: cfg.inference.intraOpThreads,
    maxSessions: cfg.inference.cacheMaxSessions, maxBytes: cfg.inference.cacheMaxBytes, log,
  });
  const { worker, metricsUrl, stopObserving } = await createQueueWorker(cfg, clients, {
    taskQueue: cfg.taskQueues.inference,
    activities: {
      ...inferenceActivities({ pool, store, log, tmpDir: os.tmpdir(), inferenceQueue: cfg.taskQueues.inference, sessions, batchSize: cfg.inference.batchSize }),
      // Quantized candidates are judged where models run, on the same execution providers.
      ...evaluationActivities({ pool, store, providers: cfg.inference.providers }),
    },
    maxConcurrent: cfg.inference.maxConcurrentActivities,
  }).catch(async (err: unknown) => {
    await sessions.close();
    await clients.close();
    throw err;
  });
  if (cfg.observability.metricsPort !== undefined) collectSessionCache(() => sessions.stats());
  log.info({ taskQueue: cfg.taskQueues.inference, providers: cfg.inference.providers, batchSize: cfg.inference.batchSize, intraOpThreads: cfg.inference.intraOpThreads }, 'qc-inference worker started');
  const running = runWorker(worker, async () => {
    await stopObserving();
    await sessions.close();
    await clients.close();
    log.info({ cache: sessions.stats() }, 'qc-inference worker stopped');
  }, metricsUrl);
  return { ...running, sessions };
}

if (require.main === module) {
  const cfg = loadConfig();
  workerMain(cfg, getLogger(cfg, 'worker.inference'), () => startInferenceWorker(cfg));
}
