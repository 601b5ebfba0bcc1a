import { saveFlag } from '../src/store/flags';
import { getModelVersion, resolveModelRefs, UnknownModelError } from '../src/store/models';
import { LifecycleError, moveStage } from '../src/store/model-lifecycle';
import { rolloutStatus, type RolloutStatus } from '../src/store/rollout';
import type { Stage } from '../src/models/lifecycle';
import { type ActivityDeps, badInput, policyOf, requireProject } from './deps';

/** A candidate version id (`tenant/name/version`) as the model reference a flag's variant names. */
export const candidateRef = (versionId: string): string => {
  const [tenant, name, version] = versionId.split('/');
  return `${tenant}/${name}@${version}`;
};

/** What modelRollout does to the world: the flag's split, the candidate's stage, and reading the arms' outcomes. A few lines each over the stores. */
export function rolloutActivities(deps: ActivityDeps) {
  return {
    async setRolloutShare(input: { flag: string; salt: string; candidate: string; share: number; actor: string }): Promise<void> {
      if (!(await getModelVersion(deps.pool, input.candidate))) throw badInput(`model version ${input.candidate} does not exist; see qcflow model list`);
      await saveFlag(deps.pool, {
        key: input.flag, salt: input.salt, defaultVariant: 'control', enabled: true,
        arms: [{ variant: candidateRef(input.candidate), share: input.share }, { variant: 'control', share: 1 - input.share }],
      }, input.actor);
    },

    /**
     * Moves the candidate to `to` unless it is there already (a retried activity); a refused move is bad
     * input. With `project` (a rollout starting), the candidate enters canary only where the project's
     * control models are of its tenant: a rollout moves one tenant's models, never another's production.
     */
    async moveCandidateStage(input: { candidate: string; to: Stage; actor: string; reason: string; project?: string }): Promise<void> {
      const v = await getModelVersion(deps.pool, input.candidate);
      if (input.project && v) {
        const control = await resolveModelRefs(deps.pool, policyOf(await requireProject(deps, input.project)).layer3.models).catch((err: unknown) => {
          if (err instanceof UnknownModelError) throw badInput(`project ${input.project}'s control: ${err.message}`);
          throw err;
        });
        const foreign = control.filter((m) => !m.id.startsWith(`${v.tenant}/`));
        if (control.length === 0) throw badInput(`project ${input.project} has no layer-3 models to roll ${input.candidate} out against; set qcPolicy.layer3.models`);
        if (foreign.length) throw badInput(`project ${input.project}'s control ${foreign.map((m) => m.id).join(', ')} is not in tenant ${v.tenant}: a rollout of ${input.candidate} can only replace its own tenant's models`);
      }
      if (v?.stage === input.to) return;
      try {
        await moveStage(deps.pool, input.candidate, input.to, input.actor, input.reason);
      } catch (err) {
        if (err instanceof LifecycleError) throw badInput(err.message);
        throw err;
      }
    },

    async checkRollout(input: { project: string; flag: string; margin: number; minPerArm: number }): Promise<RolloutStatus> {
      return rolloutStatus(deps.pool, input.project, input.flag, { margin: input.margin, minPerArm: input.minPerArm });
    },
  };
}
