import type { ActivityOptions } from '@temporalio/workflow';

/** Infrastructure faults (Postgres, MinIO, a dead worker) retry with backoff; bad input (type BadInput) never does. */
export const CPU_ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes: ['BadInput'] },
};

export const SHORT_ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  retry: CPU_ACTIVITY_OPTIONS.retry,
};

/** Webhook receivers are someone else's service: a bounded number of tries, then the batch goes on without them. */
export const WEBHOOK_ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 6, nonRetryableErrorTypes: ['BadInput'] },
};

/** Layer 3 on the inference workers: heartbeats every run batch, so a dead worker is noticed within two minutes. */
export const INFERENCE_ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '2 minutes',
  retry: CPU_ACTIVITY_OPTIONS.retry,
};
