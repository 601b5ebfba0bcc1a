import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CompleteAsyncError } from '@temporalio/activity';
import { reviewTaskActivities } from '../../activities';
import type { AwaitReviewInput } from '../../activities/review';
import { ingestFile } from '../../src/cli/ingest';
import { withTransaction } from '../../src/clients/pg';
import { beginDecision, openTask } from '../../src/store/review';
import { startActivityWorker, type RunningWorker } from '../../workers/runtime';
import { reviewStateQuery, workflowIds, type ReviewOutcome } from '../../workflows/definitions';
import { createTestProject, harness, waitUntil, type Harness } from './helpers';

/**
 * A human-task dispatch that Temporal marks started but no worker runs (seen under load as a dev-server
 * "context deadline exceeded") left the task without a row, invisible until its 24 h SLA. The review
 * worker here loses every first dispatch that way; the workflow must notice and dispatch the round again.
 */
let h: Harness;
let lossy: RunningWorker;
let lost = 0;
before(async () => {
  h = await harness({ worker: true });
  lossy = await startActivityWorker(h.cfg, {
    component: 'worker.review-lossy', taskQueue: h.cfg.taskQueues.review, poolSize: 2,
    activities: ({ pool, log }) => {
      const real = reviewTaskActivities({ pool, log });
      return {
        async awaitReviewDecision(input: AwaitReviewInput) {
          if ((input.dispatch ?? 0) === 0) {
            lost++;
            throw new CompleteAsyncError();
          }
          return real.awaitReviewDecision(input);
        },
      };
    },
  });
});
after(async () => {
  await lossy.shutdown();
  await h.close();
});

test('a review task whose dispatch was never recorded is dispatched again, and a late first dispatch cannot take it over', async () => {
  const project = await createTestProject(h.pool, undefined, {
    ontology: { classes: ['cat', 'dog'] }, qcPolicy: { fusion: { mode: 'linear' }, auditShare: 0, review: { dispatchCheckSeconds: 2 } },
  });
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-dispatch-')), 'in.jsonl');
  writeFileSync(file, `${JSON.stringify({ externalId: 'split', payload: { text: 'a cat or a dog', lang: 'en' }, annotations: [{ annotator: 'ann-1', labels: { classes: ['cat'] } }, { annotator: 'ann-2', labels: { classes: ['dog'] } }] })}\n`);
  const r = await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 10, wait: true });
  assert.equal(r.counts.review, 1);

  const row = async () => (await h.pool.query<{ id: string; sample_id: string; dispatch: number; task_token: Buffer | null }>(
    'SELECT id::text, sample_id, dispatch, task_token FROM review_tasks WHERE project_id = $1', [project])).rows[0];
  await waitUntil('the round dispatched again and recorded', async () => (await row()) !== undefined, 30_000);
  const task = (await row())!;
  assert.equal(lost, 1, 'the first dispatch was lost');
  assert.equal(task.dispatch, 1);

  // The lost dispatch turning up late is told it is stale and leaves the live token alone.
  const late = await withTransaction(h.pool, (c) => openTask(c, { project, sampleId: task.sample_id, round: 0, reason: 'uncertain', audience: 'reviewers', assign: true, slaSeconds: 60, taskToken: Buffer.from('dead'), dispatch: 0 }));
  assert.equal(late.stale, true);
  assert.deepEqual((await row())!.task_token, task.task_token);

  const handle = h.client.workflow.getHandle<() => Promise<ReviewOutcome>>(workflowIds.review(task.sample_id));
  assert.equal((await handle.query(reviewStateQuery)).redispatches, 1);
  const token = await beginDecision(h.pool, task.id, { user: 'vera', decision: 'approve' });
  await h.client.activity.complete(token!, { taskId: task.id, decision: 'approve' });
  const outcome = await handle.result();
  assert.equal(outcome.decision, 'approve');
  assert.equal(outcome.status, 'accepted');
  const history = await handle.fetchHistory();
  const scheduled = history.events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'awaitReviewDecision').length;
  assert.equal(scheduled, 2, 'one lost dispatch, one that a reviewer completed');
  assert.ok(history.events!.some((e) => e.activityTaskCancelRequestedEventAttributes), 'the lost dispatch was cancelled');
});
