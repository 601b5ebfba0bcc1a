import { ApplicationFailure, condition, patched, proxyActivities, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  abortRolloutSignal, forcePromoteSignal, pauseRolloutSignal, resumeRolloutSignal, rolloutStateQuery, type ModelRolloutInput, type RolloutState,
} from './definitions';
import { rolloutInputProblem } from './inputs';
import { SHORT_ACTIVITY_OPTIONS } from './activity-options';
import { QC_MODEL, QC_PROJECT } from './search-attributes';

const act = proxyActivities<Activities>(SHORT_ACTIVITY_OPTIONS);

const SRM_P = 0.001;

/**
 * A candidate model version against a project's control, ramped through the project's layer-3 flag: the
 * candidate goes to canary and gets `steps[0]` of the samples; every `checkSeconds` the arms' outcomes are
 * read and judged by the always-valid sequential test (src/rollout/sequential.ts), so checking this often
 * keeps the error rate at α. Promote moves to the next step, and from the last step before 100% to
 * production (the production alias moves); rollback gives the control every sample again and returns the
 * candidate to validated. A sample-ratio mismatch holds the rollout until someone resumes it. Signals:
 * pause, resume, abort (= rollback), forcePromote — each recorded with who and why.
 */
export async function modelRollout(input: ModelRolloutInput): Promise<RolloutState> {
  const bad = rolloutInputProblem(input);
  if (bad) throw ApplicationFailure.nonRetryable(bad, 'BadInput');
  const steps = input.steps ?? [0.05, 0.25, 0.5, 1];
  const o = { minPerArm: input.minPerArm ?? 200, margin: input.margin ?? 0.01, checkSeconds: input.checkSeconds ?? 60 };
  const state: RolloutState = { status: 'running', step: 0, share: steps[0]!, checks: 0, last: null, log: [] };
  const note = (what: string, by: string, why: string): void => { state.log.push({ at: new Date().toISOString(), what, by, why }); };
  let paused = false;
  let ending: { outcome: 'promote' | 'rollback'; by: string; why: string } | undefined;
  const who = (s: unknown): { by: string; reason: string } | undefined => {
    const v = s as { by?: unknown; reason?: unknown } | undefined;
    return typeof v?.by === 'string' && v.by ? { by: v.by, reason: typeof v.reason === 'string' ? v.reason : '' } : undefined;
  };
  // A signal without who sent it is recorded as refused, not acted on: every decision must name a person.
  const signal = (name: string, apply: (s: { by: string; reason: string }) => void) => (arg: unknown) => {
    const s = who(arg);
    if (!s) return note(`${name} refused`, 'unknown', 'a signal must say who sends it: {"by": "you", "reason": "…"}');
    apply(s);
  };
  setHandler(rolloutStateQuery, () => state);
  setHandler(pauseRolloutSignal, signal('pause', (s) => { paused = true; state.status = 'paused'; note('paused', s.by, s.reason); }));
  setHandler(resumeRolloutSignal, signal('resume', (s) => { paused = false; state.status = 'running'; note('resumed', s.by, s.reason); }));
  setHandler(abortRolloutSignal, signal('abort', (s) => { ending ??= { outcome: 'rollback', by: s.by, why: `aborted: ${s.reason}` }; }));
  setHandler(forcePromoteSignal, signal('forcePromote', (s) => { ending ??= { outcome: 'promote', by: s.by, why: `forced: ${s.reason}` }; }));
  upsertSearchAttributes([{ key: QC_PROJECT, value: input.project }, { key: QC_MODEL, value: input.candidate }]);

  const salt = workflowInfo().workflowId;
  const actor = `rollout:${workflowInfo().workflowId}`;
  // With the project, the move to canary first checks that the project's control is of the candidate's
  // tenant. Histories from before the check replay without it (their recorded move had no project).
  const tenantChecked = patched('rollout-tenant-check');
  await act.moveCandidateStage({ candidate: input.candidate, to: 'canary', actor, reason: `rollout against the control of ${input.project}`, ...(tenantChecked ? { project: input.project } : {}) });
  await act.setRolloutShare({ flag: input.flag, salt, candidate: input.candidate, share: state.share, actor });
  note(`share ${state.share}`, actor, 'rollout started');

  while (!ending) {
    // Signals cut the wait short; a paused or held rollout waits for resume (or abort, or force-promote).
    await condition(() => ending !== undefined, o.checkSeconds * 1000);
    if (ending) break;
    if (paused) {
      await condition(() => !paused || ending !== undefined);
      continue;
    }
    const r = await act.checkRollout({ project: input.project, flag: input.flag, margin: o.margin, minPerArm: o.minPerArm });
    state.checks++;
    state.last = {
      arms: r.arms.map((a) => ({ variant: a.variant, n: a.n, agreed: a.agreed, failed: a.failed, reviewed: a.reviewed, overturned: a.overturned, latencyP95Ms: a.latencyP95Ms })), srmP: r.srm?.p ?? null,
      decision: r.verdict?.decision ?? null, estimate: r.verdict?.estimate ?? null, interval: r.verdict?.interval ?? null, why: r.verdict?.why ?? 'no outcomes yet',
    };
    if (r.srm && r.srm.p < SRM_P) {
      paused = true;
      state.status = 'held';
      note('held', actor, `sample-ratio mismatch (p ${r.srm.p.toExponential(2)} < ${SRM_P}): the split is broken; resume once it is fixed`);
      continue;
    }
    if (r.verdict?.decision === 'rollback') ending = { outcome: 'rollback', by: actor, why: r.verdict.why };
    else if (r.verdict?.decision === 'promote') {
      if (state.step + 1 >= steps.length - 1) ending = { outcome: 'promote', by: actor, why: r.verdict.why };
      else {
        state.step++;
        state.share = steps[state.step]!;
        await act.setRolloutShare({ flag: input.flag, salt, candidate: input.candidate, share: state.share, actor });
        note(`share ${state.share}`, actor, r.verdict.why);
      }
    }
  }

  if (ending.outcome === 'promote') {
    await act.setRolloutShare({ flag: input.flag, salt, candidate: input.candidate, share: 1, actor: ending.by });
    await act.moveCandidateStage({ candidate: input.candidate, to: 'production', actor: ending.by, reason: ending.why });
    state.share = 1;
    state.status = 'promoted';
  } else {
    await act.setRolloutShare({ flag: input.flag, salt, candidate: input.candidate, share: 0, actor: ending.by });
    await act.moveCandidateStage({ candidate: input.candidate, to: 'validated', actor: ending.by, reason: ending.why });
    state.share = 0;
    state.status = 'rolled_back';
  }
  note(state.status, ending.by, ending.why);
  return state;
}
