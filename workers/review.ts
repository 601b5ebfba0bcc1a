import { reviewTaskActivities } from '../activities';
import { loadConfig, type Config } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { startActivityWorker, workerMain, type RunningWorker } from './runtime';

/**
 * The qc-review worker: runs the human-task activity that records a review task and waits, without a slot,
 * for a reviewer to complete it. Cheap, so one per deployment is plenty; a dead one only delays new tasks.
 */
export function startReviewWorker(cfg: Config): Promise<RunningWorker> {
  return startActivityWorker(cfg, {
    component: 'worker.review', taskQueue: cfg.taskQueues.review, poolSize: 4,
    activities: ({ pool, log }) => reviewTaskActivities({ pool, log }),
  });
}

if (require.main === module) {
  const cfg = loadConfig();
  workerMain(cfg, getLogger(cfg, 'worker.review'), () => startReviewWorker(cfg));
}
