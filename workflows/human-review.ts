import { ActivityFailure, ApplicationFailure, CancellationScope, condition, isCancellation, patched, proxyActivities, setCurrentDetails, setHandler, sleep, TimeoutFailure, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities, ReviewTaskActivities } from '../activities';
import { reviewStateQuery, undoDecisionUpdate, type HumanReviewInput, type ReviewOutcome, type ReviewState } from './definitions';
import { SHORT_ACTIVITY_OPTIONS } from './activity-options';
import { QC_PROJECT, QC_STAGE } from './search-attributes';

const act = proxyActivities<Activities>(SHORT_ACTIVITY_OPTIONS);

/** An infrastructure fault while recording the task (not a timeout) retries the same round after this pause. */
const RECORD_RETRY_PAUSE = '10 seconds';
/** Checks for an unrecorded dispatch back off to this. */
const MAX_DISPATCH_CHECK_MS = 30 * 60_000;

/** A human-task dispatch that Temporal marked started but no worker recorded: the round is dispatched again. */
class DispatchLost extends Error {}

/**
 * One sample's human review (`review/{sample}`). Each round is a human-task activity on the review queue
 * that a reviewer completes; its timeout is the project's SLA. A round that times out expires and the
 * next one goes to another reviewer (reason `escalated`); after `maxEscalations` the task goes to the
 * project's leads, and keeps rotating among them until someone decides. A decision takes effect after
 * the project's undo window, in which its reviewer may take it back (an Update, accepted once): the next
 * round then goes back to them. A correction that no longer passes the project's checks opens a new round
 * instead of being applied.
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
  // Dispatches of a round are checked for a recorded task: a task Temporal marked started but no worker
  // ran was otherwise invisible until its SLA ran out. Histories from before the check replay without it.
  const checked = patched('review-dispatch-check');
  // Histories from before the undo window apply a decision at once.
  const undoWindow = patched('review-undo-window') && (input.review.undoSeconds ?? 0) > 0;
  /** The task whose decision may be taken back right now, and who took it back. */
  let undoable: string | undefined;
  let undoneBy: string | undefined;
  let assignTo: string | undefined;
  setHandler(undoDecisionUpdate, (req) => {
    undoneBy = req.user;
    undoable = undefined;
    return { undone: true as const };
  }, {
    validator: (req) => {
      if (undoable === undefined || undoable !== req.taskId) throw new Error(`the decision on task ${req.taskId} can no longer be undone: its undo window has closed, or it was undone already`);
    },
  });
  let dispatch = 0;
  let roundStarted = Date.now();
  for (;;) {
    const assign = state.audience === 'leads' || state.round > 0 || input.review.assignment === 'round-robin';
    const task = {
      project: input.project, sampleId: input.sampleId, round: state.round, reason: state.reason, audience: state.audience, assign, slaSeconds: input.review.slaSeconds,
      ...(assignTo ? { assignTo } : {}),
    };
    setCurrentDetails(`Round ${state.round} (${state.reason}) waiting for ${assignTo ?? (state.audience === 'leads' ? 'a lead' : 'a reviewer')}; ${state.escalations} escalation(s)${state.undos ? `, ${state.undos} undo(s)` : ''}`);
    let ref;
    try {
      ref = checked ? await dispatchChecked(input, { ...task, dispatch }, roundStarted) : await humanTask.awaitReviewDecision(task);
    } catch (err) {
      if (err instanceof DispatchLost) {
        dispatch++;
        state.redispatches = (state.redispatches ?? 0) + 1;
        continue;
      }
      if (!(err instanceof ActivityFailure)) throw err;
      if (err.cause instanceof ApplicationFailure && err.cause.nonRetryable) throw err;
      if (err.cause instanceof TimeoutFailure) {
        await act.expireReviewTask({ sampleId: input.sampleId, round: state.round });
        state.escalations++;
        state.round++;
        state.reason = 'escalated';
        if (state.escalations > input.review.maxEscalations) state.audience = 'leads';
        assignTo = undefined;
        dispatch = 0;
        roundStarted = Date.now();
      } else {
        await sleep(RECORD_RETRY_PAUSE);
      }
      continue;
    }
    if (undoWindow) {
      state.status = 'undo_window';
      undoable = ref.taskId;
      const undone = await condition(() => undoneBy !== undefined, input.review.undoSeconds * 1000);
      undoable = undefined;
      if (undone) {
        await act.undoReviewDecision({ taskId: ref.taskId, user: undoneBy! });
        state.undos = (state.undos ?? 0) + 1;
        state.round++;
        state.reason = 'undone';
        state.status = 'waiting';
        assignTo = undoneBy;
        undoneBy = undefined;
        dispatch = 0;
        roundStarted = Date.now();
        continue;
      }
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
    assignTo = undefined;
    dispatch = 0;
    roundStarted = Date.now();
  }
}

/**
 * One dispatch of a round's human-task activity, its timeout the rest of the round's SLA. Unless a reviewer
 * decides first, the workflow asks after `dispatchCheckSeconds` (twice as long for each dispatch of the
 * round before, up to 30 minutes) whether the task was recorded; when it was not, the dispatch is cancelled
 * and DispatchLost thrown, so the round goes out again.
 */
async function dispatchChecked(input: HumanReviewInput, task: Parameters<ReviewTaskActivities['awaitReviewDecision']>[0] & { dispatch: number }, roundStarted: number) {
  const remainingMs = Math.max(1000, roundStarted + input.review.slaSeconds * 1000 - Date.now());
  const humanTask = proxyActivities<ReviewTaskActivities>({ taskQueue: input.reviewQueue, startToCloseTimeout: remainingMs, retry: { maximumAttempts: 1 } });
  const checkMs = Math.min(MAX_DISPATCH_CHECK_MS, (input.review.dispatchCheckSeconds ?? 60) * 1000 * 2 ** task.dispatch);
  return CancellationScope.cancellable(async () => {
    const decision = humanTask.awaitReviewDecision(task);
    let settled = false;
    void decision.then(() => { settled = true; }, () => { settled = true; });
    await Promise.race([decision, sleep(checkMs)]);
    if (settled || (await act.reviewTaskRecorded({ sampleId: task.sampleId, round: task.round, dispatch: task.dispatch })) || settled) return decision;
    CancellationScope.current().cancel();
    try {
      await decision;
    } catch (err) {
      if (!isCancellation(err)) throw err;
    }
    throw new DispatchLost();
  });
}
