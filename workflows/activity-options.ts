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
