import type { Layer3Plan, PlausibilitySummary } from '../workflows/definitions';
import { resolveModelRefs, UnknownModelError, type PinnedModel } from '../src/store/models';
import { type ActivityDeps, batchPolicy, policyOf, requireProject } from './deps';
import { loadFlags } from '../src/store/flags';
import { splitProblem } from '../src/rollout/bucketing';
import { PinnedSplits } from '../src/rollout/pinned-split';
import { layer3Models } from './layer3-models';
import { Layer3Scoring, type InferenceDeps, type PlausibilityInput } from './layer3-scoring';

/** The rollout flag as it is now, with its candidates' versions, for a batch about to start; or why it does not apply. */
async function pinRollout(deps: ActivityDeps, flag: string): Promise<Pick<Layer3Plan, 'rollout' | 'rolloutSkipped'>> {
  const f = (await loadFlags(deps.pool, [flag]))[0];
  const skip = (why: string) => {
    deps.log.warn({ flag, why }, 'rollout flag not applied; the control scores every sample');
    return { rolloutSkipped: why };
  };
  if (!f) return skip(`flag ${flag} does not exist`);
  if (!f.enabled) return skip(`flag ${flag} is switched off`);
  const problem = splitProblem(f.arms);
  if (problem) return skip(`flag ${flag}: ${problem}`);
  if (!f.arms.some((a) => a.variant === 'control')) return skip(`flag ${flag} has no control arm`);
  const candidates: Record<string, PinnedModel[]> = {};
  for (const a of f.arms.filter((x) => x.variant !== 'control' && x.share > 0)) {
    try {
      candidates[a.variant] = await resolveModelRefs(deps.pool, [a.variant]);
    } catch (err) {
      if (err instanceof UnknownModelError) return skip(`flag ${flag}: ${err.message}`);
      throw err;
    }
  }
  return { rollout: { flag, salt: f.salt, arms: f.arms, candidates } };
}

/** On the qc-cpu queue: pins the project's layer-3 models (null when it has none) for a batch about to start. */
export function layer3PlanActivities(deps: ActivityDeps) {
  return {
    async pinLayer3Models(input: { project: string }): Promise<Layer3Plan | null> {
      const policy = policyOf(await requireProject(deps, input.project));
      if (policy.layer3.models.length === 0) return null;
      try {
        const models = await resolveModelRefs(deps.pool, policy.layer3.models);
        return { models, taskQueue: deps.inferenceQueue, ...(policy.layer3.rollout ? await pinRollout(deps, policy.layer3.rollout.flag) : {}) };
      } catch (err) {
        // Failing the batch would strand its samples; they go to review with the reason instead.
        if (err instanceof UnknownModelError) return { models: [], taskQueue: deps.inferenceQueue, unresolved: err.message };
        throw err;
      }
    },
  };
}

/**
 * On the qc-inference queue: layer 3, the pinned model(s) over every layer-1-passed sample of the batch (of
 * its arm, under a gray release). A model fault sends the rest of the batch to review with the reason; a
 * worker fault is thrown, for the retry.
 */
export function inferenceActivities(deps: InferenceDeps) {
  const models = layer3Models(deps);
  const splits = new PinnedSplits();

  return {
    async scorePlausibility(input: PlausibilityInput): Promise<PlausibilitySummary> {
      const policy = await batchPolicy(deps, input, await requireProject(deps, input.project));
      const run = new Layer3Scoring(deps, models, splits, input, policy.layer3.topK);
      await run.loadMembers();
      // Only loading can fail here: faults of a running batch are recorded by the run.
      if (!run.faulted) await models.withSessions(run.members, (sessions) => run.scoreAll(sessions)).catch((err: unknown) => run.faultOrThrow(err));
      if (run.faulted) await run.writeUnjudged();
      return run.done();
    },
  };
}

export type InferenceActivities = ReturnType<typeof inferenceActivities>;
