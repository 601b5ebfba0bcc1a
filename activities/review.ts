import { CompleteAsyncError, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import { withTransaction } from '../src/clients/pg';
import type { Logger } from '../src/clients/logger';
import { checkCorrection, labelsAsConsensus, reviewerAnnotator } from '../src/review/correction';
import { describeFindings } from '../src/qc/findings';
import { STATUS_AFTER, type ReviewDecisionRef } from '../src/review/decisions';
import { expireTask, finishDecision, lockDecision, openTask, refuseCorrection, storeCorrection, taskRecorded, undoDecision } from '../src/store/review';
import { insertResampleRequests } from '../src/store/resamples';
import { audit } from '../src/store/audit';
import type { Labels } from '../src/ingest/envelope';
import type { ReviewOutcome } from '../workflows/definitions';
import { startReviewWorkflows, type ReviewStartProgress } from '../src/review/start';
import { type ActivityDeps, type BatchKey, badInput, batchPolicy, heartbeat, lastHeartbeat, policyOf, requireProject } from './deps';

/** What humanReview carries: ids and the review policy pinned when the review started. */
export interface AwaitReviewInput {
  project: string;
  sampleId: string;
  round: number;
  reason: string;
  audience: 'reviewers' | 'leads';
  assign: boolean;
  slaSeconds: number;
  /** Which dispatch of the round (the workflow dispatches a round again when one was never recorded). */
  dispatch?: number;
  /** The reviewer who took back the previous round's decision: this round goes to them. */
  assignTo?: string;
}

export type ApplyResult = { applied: true; outcome: ReviewOutcome } | { applied: false; reason: string };

/**
 * The human-task activity, on the `qc-review` queue: records the task with its Temporal task token and
 * returns without a result (CompleteAsyncError). A reviewer's decision completes it through
 * `client.activity.complete`; its start-to-close timeout is the review SLA, after which the workflow escalates.
 */
export function reviewTaskActivities(deps: { pool: Pool; log: Logger }) {
  return {
    async awaitReviewDecision(input: AwaitReviewInput): Promise<ReviewDecisionRef> {
      const token = Context.current().info.taskToken;
      const { task, created, stale } = await withTransaction(deps.pool, async (c) => {
        const opened = await openTask(c, { ...input, taskToken: token });
        if (opened.created) {
          await audit(c, {
            actor: 'qcflow', action: input.round === 0 ? 'review.open' : 'review.escalate', project: input.project, subject: input.sampleId,
            details: { taskId: opened.task.id, round: input.round, reason: input.reason, audience: input.audience, assignee: opened.task.assignee },
          });
        }
        return opened;
      });
      if (stale) {
        // The workflow gave up on this dispatch and a later one recorded the task: nothing waits on this one.
        deps.log.warn({ taskId: task.id, sampleId: input.sampleId, round: input.round, dispatch: input.dispatch ?? 0 }, 'review task dispatch arrived after a later one; left to time out');
        throw new CompleteAsyncError();
      }
      // The task id and assignee are logged; the token never is.
      deps.log.info({ taskId: task.id, sampleId: input.sampleId, project: input.project, round: input.round, reason: input.reason, assignee: task.assignee, created }, 'review task waiting for a reviewer');
      throw new CompleteAsyncError();
    },
  };
}

export type ReviewTaskActivities = ReturnType<typeof reviewTaskActivities>;

export interface ReviewActivityDeps extends ActivityDeps {
  temporal: Client;
  reviewQueue: string;
}

export function reviewActivities(deps: ReviewActivityDeps) {
  return {
    /**
     * Starts one humanReview workflow per sample of the batch that layer 5 sent to review. Idempotent: the
     * workflow id is the sample's, so a retried activity finds the reviews it already started.
     */
    async startReviews(input: BatchKey): Promise<{ started: number; existing: number }> {
      const policy = await batchPolicy(deps, input, await requireProject(deps, input.project));
      const progress = lastHeartbeat<ReviewStartProgress>() ?? { after: '', started: 0, existing: 0 };
      return startReviewWorkflows(
        { pool: deps.pool, temporal: deps.temporal, workflowQueue: Context.current().info.taskQueue, reviewQueue: deps.reviewQueue },
        { project: input.project, batchId: input.batchId, review: policy.review }, progress, heartbeat,
      );
    },

    /** Whether a review round's human-task activity (this dispatch or a later one) recorded its task. */
    async reviewTaskRecorded(input: { sampleId: string; round: number; dispatch: number }): Promise<boolean> {
      return taskRecorded(deps.pool, input);
    },

    /** The reviewer took the decision back in its undo window: the task ends `undone`, never applied. */
    async undoReviewDecision(input: { taskId: string; user: string }): Promise<void> {
      await withTransaction(deps.pool, (c) => undoDecision(c, input.taskId, input.user));
    },

    /** The SLA ran out: the task can no longer be decided (the workflow opens the next round). */
    async expireReviewTask(input: { sampleId: string; round: number }): Promise<void> {
      await withTransaction(deps.pool, (c) => expireTask(c, input.sampleId, input.round));
    },

    /**
     * Carries out a reviewer's decision: the sample's new status, a resample request, or for a correction
     * the reviewer's labels as the final annotation (checked again against layer 1 and the ontology, since
     * the project may have changed since the reviewer submitted). Writes the audit record. Idempotent.
     */
    async applyReviewDecision(input: { taskId: string }): Promise<ApplyResult> {
      return withTransaction(deps.pool, async (c) => {
        const t = await lockDecision(c, input.taskId);
        if (!t || !t.decision || !t.decidedBy) throw badInput(`review task ${input.taskId} has no recorded decision`);
        if (t.refused) return { applied: false, reason: t.refused };
        const outcome: ReviewOutcome = { sampleId: t.sampleId, taskId: input.taskId, decision: t.decision, decidedBy: t.decidedBy, status: STATUS_AFTER[t.decision] };
        if (t.status === 'decided') return { applied: true, outcome };
        if (t.decision === 'correct') {
          const project = await requireProject(deps, t.project);
          const findings = checkCorrection({ sample: t.sample, labels: t.labels, reviewer: t.decidedBy, project, layer2: policyOf(project).layer2 });
          if (findings.length > 0) {
            const refused = `the correction by ${t.decidedBy} no longer passes the project's checks: ${describeFindings(findings)}`;
            await refuseCorrection(c, input.taskId, t, refused, findings);
            return { applied: false, reason: refused };
          }
          await storeCorrection(c, { sampleId: t.sampleId, annotator: reviewerAnnotator(t.decidedBy), labels: t.labels, consensus: labelsAsConsensus(t.labels as Labels), decidedBy: t.decidedBy, decidedAt: t.decidedAt });
        }
        if (t.decision === 'resample') {
          await insertResampleRequests(c, t.project, t.sample.batchId, [{ sampleId: t.sampleId, externalId: t.sample.externalId, reasons: [`reviewer ${t.decidedBy} asked for a resample${t.comment ? `: ${t.comment}` : ''}`] }]);
        }
        await finishDecision(c, input.taskId, t, outcome.status);
        deps.log.info({ taskId: input.taskId, sampleId: t.sampleId, decision: t.decision, decidedBy: t.decidedBy }, 'review decision applied');
        return { applied: true, outcome };
      });
    },
  };
}
