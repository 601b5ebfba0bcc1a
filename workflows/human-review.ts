import { ActivityFailure, ApplicationFailure, proxyActivities, setHandler, sleep, TimeoutFailure, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities, ReviewTaskActivities } from '../activities';
import type { HumanReviewInput, ReviewOutcome } from '../activities/review';
import { reviewStateQuery, type ReviewState } from './definitions';
import { SHORT_ACTIVITY_OPTIONS } from './activity-options';
import { QC_PROJECT, QC_STAGE } from './search-attributes';

const act = proxyActivities<Activities>(SHORT_ACTIVITY_OPTIONS);

/** An infrastructure fault while recording the task (not a timeout) retries the same round after this pause. */
const RECORD_RETRY_PAUSE = '10 seconds';

/**
 * One sample's human review (`review/{sample}`). Each round is a human-task activity on the review queue
 * that a reviewer completes; its timeout is the project's SLA. A round that times out expires and the
 * next one goes to another reviewer (reason `escalated`); after `maxEscalations` the task goes to the
 * project's leads, and keeps rotating among them until someone decides. A correction that no longer
 * passes the project's checks opens a new round instead of being applied.
 */
export async function humanReview(input: HumanReviewInput): Promise<ReviewOutcome> {
  const state: ReviewState = { round: 0, reason: input.reason, audience: 'reviewers', escalations: 0, status: 'waiting' };
  setHandler(reviewStateQuery, () => state);
  upsertSearchAttributes([{ key: QC_PROJECT, value: input.project }, { key: QC_STAGE, value: 'review' }]);
  const humanTask = proxyActivities<ReviewTaskActivities>({
    taskQueue: input.reviewQueue,
    startToCloseTimeout: `${input.review.slaSeconds} seconds`,
    // A timeout is the SLA running out: the workflow escalates, it does not retry the same reviewer.
    retry: { maximumAttempts: 1 },
  });
  for (;;) {
    const assign = state.audience === 'leads' || state.round > 0 || input.review.assignment === 'round-robin';
    let ref;
    try {
      ref = await humanTask.awaitReviewDecision({
        project: input.project, sampleId: input.sampleId, round: state.round, reason: state.reason, audience: state.audience, assign, slaSeconds: input.review.slaSeconds,
      });
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      if (err.cause instanceof ApplicationFailure && err.cause.nonRetryable) throw err;
      if (err.cause instanceof TimeoutFailure) {
        await act.expireReviewTask({ sampleId: input.sampleId, round: state.round });
        state.escalations++;
        state.round++;
        state.reason = 'escalated';
        if (state.escalations > input.review.maxEscalations) state.audience = 'leads';
      } else {
        await sleep(RECORD_RETRY_PAUSE);
      }
      continue;
    }
    state.status = 'applying';
    const applied = await act.applyReviewDecision({ taskId: ref.taskId });
    if (applied.applied) {
      state.status = 'done';
      state.outcome = applied.outcome;
      upsertSearchAttributes([{ key: QC_STAGE, value: 'reviewed' }]);
      return applied.outcome;
    }
    state.round++;
    state.reason = 'correction_refused';
    state.status = 'waiting';
  }
}
