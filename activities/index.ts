import { intakeActivities } from './intake';
import { qcActivities } from './qc';
import { consistencyActivities } from './consistency';
import { resampleActivities } from './resamples';
import { releaseActivities } from './release';
import { inferenceActivities, layer3PlanActivities } from './inference';
import { decayActivities } from './decay';
import type { ActivityDeps } from './deps';

export type { ActivityDeps } from './deps';

/** All activities of the qc-cpu queue, closed over the worker's clients (samples-typescript's dependency-injection idiom). */
export function createActivities(deps: ActivityDeps) {
  return { ...intakeActivities(deps), ...qcActivities(deps), ...consistencyActivities(deps), ...resampleActivities(deps), ...releaseActivities(deps), ...layer3PlanActivities(deps), ...decayActivities(deps) };
}

export type Activities = ReturnType<typeof createActivities>;

export type { InferenceActivities, Layer3Plan, PlausibilitySummary } from './inference';
export { inferenceActivities };
