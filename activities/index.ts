import { intakeActivities } from './intake';
import { qcActivities } from './qc';
import { consistencyActivities } from './consistency';
import { resampleActivities } from './resamples';
import { releaseActivities } from './release';
import { inferenceActivities, layer3PlanActivities } from './inference';
import { decayActivities } from './decay';
import { reviewActivities, reviewTaskActivities, type ReviewActivityDeps } from './review';
import { rolloutActivities } from './rollout';

export type { ActivityDeps } from './deps';
export type { ReviewActivityDeps } from './review';

/** All activities of the qc-cpu queue, closed over the worker's clients (samples-typescript's dependency-injection idiom). */
export function createActivities(deps: ReviewActivityDeps) {
  return {
    ...intakeActivities(deps), ...qcActivities(deps), ...consistencyActivities(deps), ...resampleActivities(deps), ...releaseActivities(deps),
    ...layer3PlanActivities(deps), ...decayActivities(deps), ...reviewActivities(deps), ...rolloutActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;

export type { InferenceActivities } from './inference';
export { inferenceActivities };
export type { ReviewTaskActivities } from './review';
export { reviewTaskActivities };
