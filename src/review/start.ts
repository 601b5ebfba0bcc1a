import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { Pool } from 'pg';
import type { QcPolicy } from '../qc/policy';
import { reviewSamplesPage } from '../store/review';
import { workflowIds, type HumanReviewInput } from '../../workflows/definitions';
import { reviewMetadata } from '../../workflows/metadata';

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
    const rows = await reviewSamplesPage(d.pool, { project: f.project, batchId: f.batchId, after: progress.after, limit: START_PAGE });
    if (rows.length === 0) break;
    const start = async (r: { id: string; externalId: string; reason: string }): Promise<void> => {
      const args: HumanReviewInput = { project: f.project, sampleId: r.id, reason: r.reason, review: f.review, reviewQueue: d.reviewQueue };
      try {
        await d.temporal.workflow.start('humanReview', {
          workflowId: workflowIds.review(r.id), taskQueue: d.workflowQueue, args: [args], workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
          ...reviewMetadata({ project: f.project, sampleId: r.id, externalId: r.externalId, reason: r.reason, batchId: f.batchId, slaSeconds: f.review.slaSeconds }),
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
