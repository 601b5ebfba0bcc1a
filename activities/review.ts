import { CompleteAsyncError, Context } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { Pool } from 'pg';
import { withTransaction } from '../src/clients/pg';
import type { Logger } from '../src/clients/logger';
import { checkCorrection, describeFindings, labelsAsConsensus, reviewerAnnotator } from '../src/review/correction';
import { STATUS_AFTER, type ReviewDecision, type ReviewDecisionRef } from '../src/review/decisions';
import { audit, openTask, taskRecorded } from '../src/store/review';
import type { Labels, MediaRef } from '../src/ingest/envelope';
import type { QcPolicy } from '../src/qc/policy';
import { workflowIds, type ReviewOutcome } from '../workflows/definitions';
import { type ActivityDeps, type BatchKey, badInput, batchPolicy, heartbeat, lastHeartbeat, policyOf, requireProject } from './deps';

/** What humanReview carries: ids and the review policy pinned when the review started. */
export interface HumanReviewInput {
  project: string;
  sampleId: string;
  /** Layer 5's reason for sending the sample to review. */
  reason: string;
  review: QcPolicy['review'];
  /** The queue the human-task activity waits on (`qc-review`). */
  reviewQueue: string;
}

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

const START_PAGE = 200;
/** Workflow starts in flight at once: each is one round trip to the frontend, so a page of 200 one by one took seconds. */
const START_CONCURRENCY = 16;

export interface ReviewStartProgress {
  after: string;
  started: number;
  existing: number;
}

/**
 * Starts a humanReview workflow for every sample of the project (or one batch) in status `review`, in
 * sample-id order from `progress.after`, START_CONCURRENCY at a time, reporting progress (a heartbeat) after
 * every group of starts, so a slow frontend never outlasts the heartbeat timeout. A sample whose review already
 * runs is counted as existing (the workflow id is the sample's). Used by qcBatch and by
 * `qcflow review backfill` for samples routed to review before reviews existed.
 */
export async function startReviewWorkflows(
  d: { pool: Pool; temporal: Client; workflowQueue: string; reviewQueue: string },
  f: { project: string; batchId?: string; review: QcPolicy['review'] },
  progress: ReviewStartProgress,
  onPage: (p: ReviewStartProgress) => void,
): Promise<{ started: number; existing: number }> {
  for (;;) {
    const { rows } = await d.pool.query<{ id: string; reason: string }>(
      `SELECT s.id, COALESCE(q.details->>'reason', 'review') AS reason FROM samples s
       LEFT JOIN qc_results q ON q.sample_id = s.id AND q.layer = 5
       WHERE s.project_id = $1 AND ($2::text IS NULL OR s.batch_id = $2) AND s.status = 'review' AND s.id > $3 ORDER BY s.id LIMIT $4`,
      [f.project, f.batchId ?? null, progress.after, START_PAGE],
    );
    if (rows.length === 0) break;
    const start = async (r: { id: string; reason: string }): Promise<void> => {
      const args: HumanReviewInput = { project: f.project, sampleId: r.id, reason: r.reason, review: f.review, reviewQueue: d.reviewQueue };
      try {
        await d.temporal.workflow.start('humanReview', {
          workflowId: workflowIds.review(r.id), taskQueue: d.workflowQueue, args: [args], workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        });
        progress.started++;
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        progress.existing++;
      }
    };
    const atPageStart = { ...progress };
    for (let i = 0; i < rows.length; i += START_CONCURRENCY) {
      await Promise.all(rows.slice(i, i + START_CONCURRENCY).map(start));
      // Liveness inside a page reports the page's starting point: a retry redoes the page (its started
      // reviews then count as existing) without counting them twice.
      if (i + START_CONCURRENCY < rows.length) onPage(atPageStart);
    }
    progress.after = rows[rows.length - 1]!.id;
    onPage(progress);
  }
  return { started: progress.started, existing: progress.existing };
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

    /** The SLA ran out: the task can no longer be decided (the workflow opens the next round). */
    async expireReviewTask(input: { sampleId: string; round: number }): Promise<void> {
      await withTransaction(deps.pool, async (c) => {
        const { rows } = await c.query<{ id: string; project_id: string; assignee: string | null }>(
          `UPDATE review_tasks SET status = 'expired' WHERE sample_id = $1 AND round = $2 AND status IN ('open', 'deciding') RETURNING id::text, project_id, assignee`,
          [input.sampleId, input.round],
        );
        if (rows[0]) await audit(c, { actor: 'qcflow', action: 'review.expire', project: rows[0].project_id, subject: input.sampleId, details: { taskId: rows[0].id, round: input.round, assignee: rows[0].assignee } });
      });
    },

    /**
     * Carries out a reviewer's decision: the sample's new status, a resample request, or for a correction
     * the reviewer's labels as the final annotation (checked again against layer 1 and the ontology, since
     * the project may have changed since the reviewer submitted). Writes the audit record. Idempotent.
     */
    async applyReviewDecision(input: { taskId: string }): Promise<ApplyResult> {
      return withTransaction(deps.pool, async (c) => {
        const t = (await c.query<{
          sample_id: string; project_id: string; round: number; reason: string; status: string; decision: ReviewDecision | null;
          decided_by: string | null; decided_at: Date | null; labels: unknown; comment: string | null; outcome: { refused?: string } | null;
        }>(`SELECT sample_id, project_id, round, reason, status, decision, decided_by, decided_at, labels, comment, outcome FROM review_tasks WHERE id = $1 FOR UPDATE`, [input.taskId])).rows[0];
        if (!t || !t.decision || !t.decided_by) throw badInput(`review task ${input.taskId} has no recorded decision`);
        if (t.outcome?.refused) return { applied: false, reason: t.outcome.refused };
        const outcome: ReviewOutcome = { sampleId: t.sample_id, taskId: input.taskId, decision: t.decision, decidedBy: t.decided_by, status: STATUS_AFTER[t.decision] };
        if (t.status === 'decided') return { applied: true, outcome };
        const s = (await c.query<{ external_id: string; batch_id: string; payload: Record<string, unknown>; media: MediaRef[] }>(
          'SELECT external_id, batch_id, payload, media FROM samples WHERE id = $1 FOR UPDATE', [t.sample_id],
        )).rows[0]!;
        if (t.decision === 'correct') {
          const project = await requireProject(deps, t.project_id);
          const findings = checkCorrection({
            sample: { externalId: s.external_id, payload: s.payload, media: s.media }, labels: t.labels, reviewer: t.decided_by,
            project, layer2: policyOf(project).layer2,
          });
          if (findings.length > 0) {
            const refused = `the correction by ${t.decided_by} no longer passes the project's checks: ${describeFindings(findings)}`;
            await c.query(`UPDATE review_tasks SET status = 'decided', outcome = $2 WHERE id = $1`, [input.taskId, JSON.stringify({ refused, findings })]);
            await audit(c, { actor: t.decided_by, action: 'review.correct_refused', project: t.project_id, subject: t.sample_id, details: { taskId: input.taskId, findings } });
            return { applied: false, reason: refused };
          }
          await c.query(
            `INSERT INTO annotations (sample_id, ordinal, annotator, labels, submitted_at)
             SELECT $1, COALESCE(max(ordinal), -1) + 1, $2, $3, $4 FROM annotations WHERE sample_id = $1`,
            [t.sample_id, reviewerAnnotator(t.decided_by), JSON.stringify(t.labels), t.decided_at],
          );
          // Releases carry layer 2's consensus as the labels to train on; the reviewer's labels replace it, the machine's stays for reference.
          await c.query(
            `INSERT INTO qc_results (sample_id, layer, passed, score, findings, details) VALUES ($1, 2, true, 1, '[]', jsonb_build_object('consensus', $2::jsonb, 'correctedBy', $3::text))
             ON CONFLICT (sample_id, layer) DO UPDATE SET details = qc_results.details || jsonb_build_object('consensus', $2::jsonb, 'machineConsensus', qc_results.details->'consensus', 'correctedBy', $3::text)`,
            [t.sample_id, JSON.stringify(labelsAsConsensus(t.labels as Labels)), t.decided_by],
          );
        }
        if (t.decision === 'resample') {
          await c.query(
            `INSERT INTO resample_requests (sample_id, project_id, batch_id, external_id, reasons) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sample_id) DO NOTHING`,
            [t.sample_id, t.project_id, s.batch_id, s.external_id, JSON.stringify([`reviewer ${t.decided_by} asked for a resample${t.comment ? `: ${t.comment}` : ''}`])],
          );
        }
        await c.query(`UPDATE samples SET status = $2, decided_at = now(), updated_at = now() WHERE id = $1 AND status = 'review'`, [t.sample_id, outcome.status]);
        await c.query(`UPDATE review_tasks SET status = 'decided' WHERE id = $1`, [input.taskId]);
        await audit(c, {
          actor: t.decided_by, action: `review.${t.decision}`, project: t.project_id, subject: t.sample_id,
          details: { taskId: input.taskId, round: t.round, reason: t.reason, decidedAt: t.decided_at?.toISOString(), comment: t.comment, status: outcome.status },
        });
        deps.log.info({ taskId: input.taskId, sampleId: t.sample_id, decision: t.decision, decidedBy: t.decided_by }, 'review decision applied');
        return { applied: true, outcome };
      });
    },
  };
}
