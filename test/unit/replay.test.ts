import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';

/**
 * Histories recorded from real runs of earlier workflow code (test/fixtures/histories, recorded at 5feb940,
 * before the workflows checked their inputs) must replay on today's workflows: a change that alters
 * history needs patched(). Besides ordinary runs (an intake with an inline submission, its qcBatch, a
 * release) they include inputs today's code refuses — a submitBatch with a staging key outside the
 * project, which the old intake queued and started a batch for, and a release version "v 3", whose snapshot
 * the old release scheduled — so the `check-inputs` patch is what makes them replay (without it they fail).
 * `review_replay` (recorded at 3f73f7f, record-histories.ts --review-only) is a humanReview from before its
 * dispatches were checked: it replays through the `review-dispatch-check` patch's old path.
 * `review_undo_replay` (record-histories.ts --undo-only) takes its path through the `review-undo-window`
 * patch: approve, the undoDecision Update, a second round rejected, the window's timer.
 * `quantization_crash_replay` (--quantization-only, on workflows/model-quantization.ts as of c025156) is a
 * modelQuantization whose int4 candidate crashed onnxruntime: the run failed on it; today's workflow, behind
 * `patched('quantization-candidate-crash')`, records the crash and goes on, as `_v2` shows (without the patch
 * the older history fails to replay: nondeterminism). Their activities were stubs answering as the real ones.
 * `review_escalation_replay` (--escalation-only) is a round that ran past its SLA: the human-task activity
 * timed out, the task expired, the next round went out escalated and was approved. The `*_v2` pipeline
 * histories (--pipeline-only --suffix _v2) take the `intake-project-exists` branch. `rollout_replay` is a
 * modelRollout from before the tenant check (checked once, aborted); `rollout_replay_v2` takes the
 * `rollout-tenant-check` patch. `quantization_conv_replay` is a conv net's modelQuantization from before it
 * tried int4 with 4-bit Convs; `_v2` takes the `quantization-int4-conv` patch (two more activities).
 * `quantization_latency_replay` takes the `quantization-latency-budget` patch: its smallest candidate ran
 * ×3 slower than fp32 and the next smallest was registered. `quantization_recurrent_replay` takes
 * `quantization-int4-recurrent`: a recurrent net's int4 with 4-bit LSTM weights, tried and registered.
 * `quantization_loop_replay` takes `quantization-int4-loop`: the same candidate for a model whose Loop body
 * multiplies weights (its analysis counts them: `iteratedWeights`; runs recorded before have no count and
 * replay without the candidate).
 */
const DIR = path.resolve(__dirname, '..', 'fixtures', 'histories');
// Proto-JSON, the form `temporal workflow show --output json` and the UI's download give: readable in a diff.
const history = (file: string) => historyFromJSON(JSON.parse(readFileSync(path.join(DIR, file), 'utf8')));

test('recorded histories of earlier workflow code replay on the current workflows', async () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.history.json')).sort();
  assert.ok(files.length >= 3, files.join(', '));
  for (const f of files) {
    await Worker.runReplayHistory({ workflowsPath: require.resolve('../../workflows') }, history(f), f);
  }
});

const patchesOf = (file: string): string[] => (history(file).events ?? [])
  .flatMap((e) => e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads ?? [])
  .map((p) => (JSON.parse(Buffer.from(p.data ?? []).toString()) as { id: string }).id);

test('the _v2 pipeline histories take the new branches: the intake checks its project', () => {
  assert.ok(patchesOf('intake_replay_v2.history.json').includes('intake-project-exists'));
  assert.ok(!patchesOf('intake_replay.history.json').includes('intake-project-exists'), 'the older one replays without it');
});

test('the undo history exercises the undo window: its patch marker, the accepted Update, two rounds', () => {
  const events = history('review_undo_replay.history.json').events ?? [];
  const types = events.map((e) => e.eventType);
  const T = temporal.api.enums.v1.EventType;
  assert.ok(patchesOf('review_undo_replay.history.json').includes('review-undo-window'));
  assert.ok(types.includes(T.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) && types.includes(T.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED), 'the undo Update');
  assert.equal(types.filter((t) => t === T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED).length >= 3, true, 'two human-task rounds and the undo activity');
  assert.ok(types.includes(T.EVENT_TYPE_TIMER_FIRED), 'the second window closed on its timer');
});

test('the escalation history exercises the SLA: the first human-task activity timed out, the second completed', () => {
  const events = history('review_escalation_replay.history.json').events ?? [];
  const T = temporal.api.enums.v1.EventType;
  const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name);
  assert.deepEqual(scheduled, ['awaitReviewDecision', 'expireReviewTask', 'awaitReviewDecision', 'applyReviewDecision']);
  assert.equal(events.filter((e) => e.eventType === T.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT).length, 1);
});

test('the quantization histories: the older fails on the crashed candidate; _v2 takes the patch, tries the next method and registers it', () => {
  const T = temporal.api.enums.v1.EventType;
  const activities = (file: string): string[] => (history(file).events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
  const last = (file: string) => (history(file).events ?? []).at(-1)!.eventType;
  const crashes = (file: string): number => (history(file).events ?? []).filter((e) => e.activityTaskFailedEventAttributes?.failure?.applicationFailureInfo?.type === 'CandidateCrashed').length;
  assert.equal(crashes('quantization_crash_replay.history.json'), 1);
  assert.ok(!patchesOf('quantization_crash_replay.history.json').includes('quantization-candidate-crash'));
  assert.equal(last('quantization_crash_replay.history.json'), T.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED);
  assert.equal(crashes('quantization_crash_replay_v2.history.json'), 1);
  assert.ok(patchesOf('quantization_crash_replay_v2.history.json').includes('quantization-candidate-crash'));
  assert.deepEqual(activities('quantization_crash_replay_v2.history.json'), ['analyzeModelVersion', 'quantizeCandidate', 'evaluateModelCandidate', 'quantizeCandidate', 'evaluateModelCandidate', 'registerQuantized']);
  assert.equal(last('quantization_crash_replay_v2.history.json'), T.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
});

test('the rollout histories: the older moves the candidate without its project and no marker; _v2 takes the tenant check', () => {
  const moveInput = (file: string): Record<string, unknown> => {
    const e = (history(file).events ?? []).find((x) => x.activityTaskScheduledEventAttributes?.activityType?.name === 'moveCandidateStage')!;
    return JSON.parse(Buffer.from(e.activityTaskScheduledEventAttributes!.input!.payloads![0]!.data!).toString()) as Record<string, unknown>;
  };
  assert.ok(!patchesOf('rollout_replay.history.json').includes('rollout-tenant-check'));
  assert.equal(moveInput('rollout_replay.history.json').project, undefined);
  assert.ok(patchesOf('rollout_replay_v2.history.json').includes('rollout-tenant-check'));
  assert.equal(moveInput('rollout_replay_v2.history.json').project, 'replay-rollout');
});

test('the replay check fails on a workflow whose commands differ (control)', async () => {
  const release = readdirSync(DIR).find((f) => f.startsWith('release_'))!;
  await assert.rejects(
    Worker.runReplayHistory({ workflowsPath: require.resolve('../fixtures/altered-workflows') }, history(release), release),
    DeterminismViolationError,
  );
});

test('the conv quantization histories: the older one replays without the int4-conv candidate, _v2 takes it', () => {
  assert.ok(patchesOf('quantization_conv_replay_v2.history.json').includes('quantization-int4-conv'));
  assert.ok(!patchesOf('quantization_conv_replay.history.json').includes('quantization-int4-conv'));
  const scheduled = (file: string) => (history(file).events ?? []).filter((e) => e.activityTaskScheduledEventAttributes).length;
  assert.equal(scheduled('quantization_conv_replay_v2.history.json'), scheduled('quantization_conv_replay.history.json') + 2);
});

test('the latency history takes the latency budget: the ×3 slower 4-bit-Conv candidate is passed over for int4 with 8-bit Convs', () => {
  const file = 'quantization_latency_replay.history.json';
  assert.ok(patchesOf(file).includes('quantization-latency-budget'));
  assert.ok(!patchesOf('quantization_conv_replay_v2.history.json').includes('quantization-latency-budget'), 'the earlier one replays without it');
  const events = history(file).events ?? [];
  const register = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'registerQuantized')!;
  const input = JSON.parse(Buffer.from(register.activityTaskScheduledEventAttributes!.input!.payloads![0]!.data!).toString()) as { candidate: { method: string; int4Conv?: boolean }; budget: { latencyRatio?: number } };
  assert.deepEqual([input.candidate.method, input.candidate.int4Conv ?? false, input.budget.latencyRatio], ['int4', false, 2]);
});

test('the loop history takes the int4-loop patch: a model whose Loop body multiplies weights tries int4 with them in 4 bits, the smallest, registered', () => {
  const file = 'quantization_loop_replay.history.json';
  assert.ok(patchesOf(file).includes('quantization-int4-loop'));
  assert.ok(!patchesOf(file).includes('quantization-int4-recurrent'));
  for (const older of ['quantization_recurrent_replay.history.json', 'quantization_conv_replay_v2.history.json']) assert.ok(!patchesOf(older).includes('quantization-int4-loop'), older);
  const scheduled = (history(file).events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes] : []))
    .map((a) => ({ type: a.activityType!.name, input: JSON.parse(Buffer.from(a.input!.payloads![0]!.data!).toString()) as { method?: string; int4Recurrent?: boolean; candidate?: { int4Recurrent?: boolean } } }));
  assert.deepEqual(scheduled.filter((a) => a.type === 'quantizeCandidate').map((a) => [a.input.method, a.input.int4Recurrent ?? false]), [['int4', false], ['int4', true], ['int8-dynamic', false]]);
  assert.equal(scheduled.find((a) => a.type === 'registerQuantized')!.input.candidate!.int4Recurrent, true);
});

test('the recurrent history takes the int4-recurrent candidate: tried after int4 and registered as the smallest', () => {
  const file = 'quantization_recurrent_replay.history.json';
  assert.ok(patchesOf(file).includes('quantization-int4-recurrent'));
  for (const older of ['quantization_conv_replay_v2.history.json', 'quantization_latency_replay.history.json']) assert.ok(!patchesOf(older).includes('quantization-int4-recurrent'), older);
  const scheduled = (history(file).events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes] : []))
    .map((a) => ({ type: a.activityType!.name, input: JSON.parse(Buffer.from(a.input!.payloads![0]!.data!).toString()) as { method?: string; int4Recurrent?: boolean; candidate?: { int4Recurrent?: boolean } } }));
  assert.deepEqual(scheduled.filter((a) => a.type === 'quantizeCandidate').map((a) => [a.input.method, a.input.int4Recurrent ?? false]), [['int4', false], ['int4', true], ['int8-dynamic', false]]);
  assert.equal(scheduled.find((a) => a.type === 'registerQuantized')!.input.candidate!.int4Recurrent, true);
});
