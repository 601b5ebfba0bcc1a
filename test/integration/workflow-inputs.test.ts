import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { datasetRelease, projectIntake } from '../../workflows';
import { intakeStatsQuery, stageSamplesUpdate, submitBatchSignal, submitSamplesSignal, workflowIds } from '../../workflows/definitions';
import { createTestProject, harness, uid, waitUntil, type Harness } from './helpers';

let h: Harness;
before(async () => {
  h = await harness({ worker: true });
});
after(() => h.close());

async function failure(run: Promise<unknown>): Promise<string> {
  try {
    await run;
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    return String((err.cause)?.message);
  }
  throw new Error('the workflow did not fail');
}

test('bad start inputs fail the workflow at once, naming the field', async () => {
  const start = (wf: typeof projectIntake | typeof datasetRelease, args: unknown) =>
    h.client.workflow.execute(wf as typeof projectIntake, { workflowId: `bad-${uid()}`, taskQueue: h.cfg.taskQueues.cpu, args: [args as never], workflowExecutionTimeout: '60s' });
  assert.match(await failure(start(projectIntake, { projekt: 'demo' })), /unknown field "projekt"/);
  assert.match(await failure(start(projectIntake, {})), /^project undefined must match/);
  assert.match(await failure(start(projectIntake, { project: 'Demo Project' })), /^project "Demo Project" must match/);
  assert.match(await failure(start(datasetRelease, { project: 'demo', version: '../v1' })), /^version "\.\.\/v1" must match/);
  assert.match(await failure(start(datasetRelease, { project: 'demo', version: 'v 3' })), /^version "v 3" must match/);
  assert.match(await failure(start(datasetRelease, { project: 'demo' })), /^version undefined must match/);
});

test('an intake for a project that does not exist fails at start with the command that creates it, taking no samples', async () => {
  const project = `missing-${uid()}`;
  const handle = await h.client.workflow.signalWithStart(projectIntake, {
    workflowId: workflowIds.intake(project), taskQueue: h.cfg.taskQueues.cpu, args: [{ project }], workflowExecutionTimeout: '60s',
    signal: submitSamplesSignal, signalArgs: [{ samples: [{ externalId: 'lost-1', payload: { text: 'x', lang: 'en' }, annotations: [] }] }],
  });
  const message = await failure(handle.result());
  assert.match(message, new RegExp(`project "${project}" does not exist; create it first with: qcflow project create --name ${project} .*samples sent to this intake were not taken`));
  assert.equal((await h.pool.query('SELECT 1 FROM samples WHERE project_id = $1', [project])).rows.length, 0);
  // At once: the check is the intake's first activity, not a retry loop.
  const history = await handle.fetchHistory();
  assert.equal((history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes).length, 1);
});

test('bad signals are counted and reported, never jam the intake: a good signal after them still runs', async () => {
  const project = await createTestProject(h.pool);
  const handle = await h.client.workflow.start(projectIntake, { workflowId: workflowIds.intake(project), taskQueue: h.cfg.taskQueues.cpu, args: [{ project }] });
  // What the Temporal UI sends for an empty input, and wrong shapes.
  for (const bad of [undefined, [], { samples: 'x' }, { samples: [] }, { samples: [1, 2] }]) await handle.signal(submitSamplesSignal, bad as never);
  for (const bad of [undefined, { batchId: 'b 1', stagingKey: `staging/${project}/x.jsonl` }, { batchId: 'b1', stagingKey: 'releases/demo/v1/data.jsonl' }, { batchId: 'b2', stagingKey: `staging/${project}/../other/x.jsonl` }]) {
    await handle.signal(submitBatchSignal, bad as never);
  }
  await handle.signal(submitSamplesSignal, { samples: [{ externalId: 'ok-1', payload: { text: 'fine', lang: 'en' }, annotations: [] }] });
  await waitUntil('the good signal ran', async () => (await handle.query(intakeStatsQuery)).completed === 1);
  const stats = await handle.query(intakeStatsQuery);
  assert.equal(stats.refusedSignals, 9);
  assert.equal(stats.failed, 0);
  const errors = stats.recentErrors.join('\n');
  assert.match(errors, /signal refused: submitSamples needs \{"samples": \[ … \]\}/);
  assert.match(errors, /signal refused: submitSamples samples is empty/);
  assert.match(errors, /submitBatch batchId "b 1" must match/);
  assert.match(errors, /submitBatch stagingKey "releases\/demo\/v1\/data.jsonl" must be an object key under staging\//);
  await handle.terminate('test done');
});

test('samples sent as an update are refused at once with the reason, or staged and run as a batch', async () => {
  const project = await createTestProject(h.pool);
  const handle = await h.client.workflow.start(projectIntake, { workflowId: workflowIds.intake(project), taskQueue: h.cfg.taskQueues.cpu, args: [{ project }] });
  for (const bad of [undefined, { samples: [] }, { samples: 'x' }]) {
    await assert.rejects(handle.executeUpdate(stageSamplesUpdate, { args: [bad as never] }), (err: Error) => /samples/.test(String((err.cause as Error | undefined)?.message ?? err.message)));
  }
  const ref = await handle.executeUpdate(stageSamplesUpdate, { args: [{ samples: [
    { externalId: 'u-1', payload: { text: 'via an update', lang: 'en' }, annotations: [{ annotator: 'ann-1', labels: { classes: ['cat'] } }] },
  ] }] });
  assert.match(ref.batchId, /^inline-/);
  await waitUntil('the staged batch to complete', async () => (await handle.query(intakeStatsQuery)).completed === 1);
  const stats = await handle.query(intakeStatsQuery);
  assert.equal(stats.counts.accepted, 1);
  assert.equal(stats.refusedSignals ?? 0, 0, 'a refused update is the sender\'s error, not a refused signal');
  // Refused updates leave no trace in the history; the accepted one does.
  const events = (await handle.fetchHistory()).events ?? [];
  assert.equal(events.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length, 1);
  await handle.terminate('test done');
});
