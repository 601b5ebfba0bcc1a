import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CompleteAsyncError } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { humanReview, modelQuantization, modelRollout, qcBatch } from '../../workflows';
import { Client, type WorkflowHandle } from '@temporalio/client';
import {
  abortRolloutSignal, batchResamplesQuery, forcePromoteSignal, pauseRolloutSignal, resumeRolloutSignal, reviewStateQuery, rolloutStateQuery,
  type BatchCounts, type ModelRolloutInput, type ReviewOutcome, type RolloutState,
} from '../../workflows/definitions';
import { DEFAULT_POLICY } from '../../src/qc/policy';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { uid, waitUntil } from '../integration/helpers';
import { timeSkippingEnv } from './time-skipping';

/**
 * Workflow logic alone: the real workflows on Temporal's time-skipping test server (sdk-java's, from Maven
 * Central: test/workflows/time-skipping.ts), their activities stubbed, so each branch is driven by what the
 * stubs return and checked by which ones were called. Workflow timers are the policy's real ones (a minute
 * between rollout checks, the 10 s undo window) and are skipped; no time is skipped while an activity is
 * outstanding (the review SLA's human task), so that one is short. Time moves only when a test says so
 * (`env.sleep`; timeSkippingEnv locks skipping): left to skip on its own, as the SDK's time-skipping client
 * lets it while a result is awaited, the server also skips past workflow tasks in flight and times the
 * workflow out (sdk-java#1291), so the client here is a plain one.
 */
let env: TestWorkflowEnvironment;
let client: Client;
before(async () => {
  env = await timeSkippingEnv();
  client = new Client({ connection: env.connection, namespace: env.namespace });
});
after(() => env.teardown());

/**
 * Lets the worker act on what is due now (real time), then moves workflow time on by `stepMs`, until the
 * workflow ends. Only while it has a timer pending: with none, the server's skip runs to the run timeout.
 */
async function skipUntilDone<T>(handle: WorkflowHandle, stepMs: number): Promise<T> {
  let done = false;
  const result = (handle.result() as Promise<T>).finally(() => { done = true; });
  result.catch(() => undefined);
  for (let i = 0; i < 500 && !done; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if (!done) await env.sleep(stepMs);
  }
  return result;
}

const workerOn = (taskQueue: string, activities: object): Promise<Worker> =>
  Worker.create({ connection: env.nativeConnection, namespace: env.namespace ?? 'default', taskQueue, workflowsPath: require.resolve('../../workflows'), activities });

const COUNTS = { lines: 10, staged: 9, duplicates: 0, malformed: 1 };

/** Stub activities recording their calls; `routed` is what layer 5 says. */
function stubs(o: { routed: { accepted: number; rejected: number; review: number; resample: number }; webhookFails?: boolean }) {
  const calls: string[] = [];
  const call = <T>(name: string, value: T) => async (): Promise<T> => { calls.push(name); return value; };
  const activities = {
    stageBatch: call('stageBatch', COUNTS),
    runCompliance: call('runCompliance', { passed: 9, failed: 0 }),
    runConsistency: call('runConsistency', { samples: 9, conflicts: 0, fleissKappa: 1, krippendorffAlpha: 1, pairableItems: 9, annotators: {}, pluginErrors: [] }),
    pinLayer3Models: call('pinLayer3Models', null),
    scorePlausibility: call('scorePlausibility', { scored: 9, disagreements: 0, failed: 0, modelError: null, providers: ['cpu'], cache: { hits: 0, misses: 1, evictions: 0, loaded: 1, bytes: 1 } }),
    trackQualityDecay: call('trackQualityDecay', { subjects: 1, alerts: [], stability: 1, ks: null }),
    fuseAndDispose: call('fuseAndDispose', { counts: o.routed, audited: 0, resamples: { total: o.routed.resample, items: [] } }),
    startReviews: call('startReviews', { started: o.routed.review, existing: 0 }),
    notifyResamples: async () => {
      calls.push('notifyResamples');
      if (o.webhookFails) throw ApplicationFailure.nonRetryable('receiver answered 404', 'BadInput');
      return { notified: o.routed.resample, webhook: true };
    },
    recordBatchFinding: async (f: { rule: string }) => { calls.push(`recordBatchFinding:${f.rule}`); },
    finishBatch: call('finishBatch', undefined),
  };
  return { calls, activities };
}

async function runBatch(s: ReturnType<typeof stubs>, layer3?: { models: []; taskQueue: string } | null): Promise<{ counts: BatchCounts; webhook: string | null }> {
  const taskQueue = `wf-test-${uid()}`;
  const worker = await workerOn(taskQueue, s.activities);
  return worker.runUntil(async () => {
    const handle = await client.workflow.start(qcBatch, {
      workflowId: `qc/wf-${uid()}`, taskQueue,
      args: [{ project: 'p', batchId: 'b1', stagingKey: 'staging/p/b1.jsonl', ...(layer3 === undefined ? {} : { layer3: layer3 && { ...layer3, taskQueue } }) }],
    });
    const counts = await handle.result();
    return { counts, webhook: (await handle.query(batchResamplesQuery)).webhook };
  });
}

test('qcBatch without a model, review or resamples runs the five layers in order; refused lines count as malformed, not as rejected samples', async () => {
  const s = stubs({ routed: { accepted: 8, rejected: 1, review: 0, resample: 0 } });
  const r = await runBatch(s);
  assert.deepEqual(s.calls, ['stageBatch', 'runCompliance', 'runConsistency', 'pinLayer3Models', 'trackQualityDecay', 'fuseAndDispose', 'finishBatch']);
  assert.deepEqual(r.counts, { ...COUNTS, accepted: 8, rejected: 1, review: 0, resample: 0 });
});

test('qcBatch with a model pinned by the intake scores on its queue; reviews are started; a failing webhook is recorded and the batch still ends', async () => {
  const s = stubs({ routed: { accepted: 5, rejected: 0, review: 2, resample: 2 }, webhookFails: true });
  const r = await runBatch(s, { models: [], taskQueue: '' });
  assert.deepEqual(s.calls, ['stageBatch', 'runCompliance', 'runConsistency', 'scorePlausibility', 'trackQualityDecay', 'fuseAndDispose', 'startReviews', 'notifyResamples', 'recordBatchFinding:webhook.failed', 'finishBatch']);
  assert.equal(r.webhook, 'failed');
  assert.equal(r.counts.review, 2);
  // The intake decided there is no model: nothing pins one again.
  const none = stubs({ routed: { accepted: 9, rejected: 0, review: 0, resample: 0 } });
  await runBatch(none, null);
  assert.ok(!none.calls.includes('pinLayer3Models') && !none.calls.includes('scorePlausibility'));
});

test('humanReview escalates on each SLA timeout, to the leads after maxEscalations, and ends with the decision that is applied after its undo window', async () => {
  const rounds: Array<{ round: number; audience: string; reason: string }> = [];
  const expired: number[] = [];
  const taskQueue = `wf-review-${uid()}`;
  const outcome: ReviewOutcome = { sampleId: 's1', taskId: 't3', decision: 'approve', decidedBy: 'lead-1', status: 'accepted' };
  // The SLA is the human-task activity's timeout: 2 s of real time here. The test server moves no time at
  // all while an activity is scheduled or running — measured: env.sleep(10 min) with the human task only
  // scheduled, on a queue nobody polls, did not return within a minute — so no SLA whose round is a
  // pending activity can be skipped, whether it is the activity's timeout or a workflow timer racing it.
  // The undo window, a workflow timer with no activity pending, is skipped.
  const review = { ...DEFAULT_POLICY.review, slaSeconds: 2, maxEscalations: 1 };
  const worker = await workerOn(taskQueue, {
    // Rounds 0 and 1 wait past their SLA; round 2 is decided at once.
    awaitReviewDecision: async (i: { round: number; audience: string; reason: string }) => {
      rounds.push({ round: i.round, audience: i.audience, reason: i.reason });
      if (i.round < 2) throw new CompleteAsyncError();
      return { taskId: 't3', decision: 'approve' };
    },
    reviewTaskRecorded: async () => true,
    expireReviewTask: async (i: { round: number }) => { expired.push(i.round); },
    applyReviewDecision: async () => ({ applied: true, outcome }),
  });
  const result = await worker.runUntil(async () => {
    const handle = await client.workflow.start(humanReview, {
      workflowId: `review/wf-${uid()}`, taskQueue,
      args: [{ project: 'p', sampleId: 's1', reason: 'uncertain', review, reviewQueue: taskQueue }],
    });
    await waitUntil('round 2 decided', async () => (await handle.query(reviewStateQuery)).status === 'undo_window', 10_000);
    assert.equal(review.undoSeconds, 10);
    const r = await skipUntilDone<ReviewOutcome>(handle, review.undoSeconds * 1000);
    return { r, state: await handle.query(reviewStateQuery) };
  });
  assert.deepEqual(result.r, outcome);
  assert.deepEqual(rounds, [
    { round: 0, audience: 'reviewers', reason: 'uncertain' },
    { round: 1, audience: 'reviewers', reason: 'escalated' },
    { round: 2, audience: 'leads', reason: 'escalated' },
  ]);
  assert.deepEqual(expired, [0, 1]);
  assert.equal(result.state.status, 'done');
});

test('modelQuantization: when no candidate fits, the best integer one is retried with 1, 2, 4 … sensitive nodes in fp32, and the first that fits is registered', async () => {
  const taskQueue = `wf-quant-${uid()}`;
  const quantized: Array<{ method: string; excludeNodes: string[] }> = [];
  // Cosine by candidate: int8-static is the best integer one, and fits once two nodes stay in fp32.
  const cosine = (method: string, excluded: number): number => (method === 'int8-static' ? 0.97 + 0.011 * excluded : method === 'fp16' ? 0.985 : 0.9);
  const metrics = (c: number) => ({ top1Agreement: 1, cosine: { mean: c, min: c, p05: c }, maxAbsDiff: 0, samples: 8, latencyMs: { reference: 1, candidate: 1, ratio: 1 } });
  const worker = await workerOn(taskQueue, {
    analyzeModelVersion: async () => ({ ops: { MatMul: 4 }, parameters: 1000, opset: 17, applicable: ['int4', 'int8-static', 'int8-dynamic', 'fp16'], bytes: 4000, hasGolden: true }),
    quantizeCandidate: async (i: { method: string; excludeNodes?: string[] }) => {
      quantized.push({ method: i.method, excludeNodes: i.excludeNodes ?? [] });
      const excluded = (i.excludeNodes ?? []).length;
      return { method: i.method, key: `${i.method}|${excluded}`, sha256: 'x', bytes: i.method === 'fp16' ? 2000 : 1000 + excluded, quantizedNodes: 4 - excluded, weightRatio: 0.25, excludeNodes: i.excludeNodes ?? [] };
    },
    evaluateModelCandidate: async (i: { candidateKey: string }) => {
      const [method, excluded] = i.candidateKey.split('|');
      return metrics(cosine(method!, Number(excluded)));
    },
    rankSensitiveNodes: async () => [{ node: 'n1', cosineLoss: 0.02 }, { node: 'n2', cosineLoss: 0.01 }, { node: 'n3', cosineLoss: 0.001 }, { node: 'n4', cosineLoss: 0.0001 }],
    registerQuantized: async () => ({ id: 'default/m/1-int8', version: '1-int8' }),
  });
  const progress = await worker.runUntil(() => client.workflow.execute(modelQuantization, {
    workflowId: `quantize/wf-${uid()}`, taskQueue,
    args: [{ modelId: 'default/m/1', budget: { top1: 0.99, cosine: 0.99 }, modelsQueue: taskQueue, inferenceQueue: taskQueue }],
  }));
  assert.deepEqual(quantized, [
    { method: 'int4', excludeNodes: [] }, { method: 'int8-static', excludeNodes: [] }, { method: 'int8-dynamic', excludeNodes: [] }, { method: 'fp16', excludeNodes: [] },
    { method: 'int8-static', excludeNodes: ['n1'] }, { method: 'int8-static', excludeNodes: ['n1', 'n2'] },
  ]);
  assert.deepEqual(progress.chosen, { id: 'default/m/1-int8', version: '1-int8', method: 'int8-static', bytes: 1002 });
  assert.equal(progress.stage, 'done');
});

test('modelQuantization: a candidate that crashes onnxruntime in evaluation is recorded as unfit and the search goes on', async () => {
  const taskQueue = `wf-quant-${uid()}`;
  const worker = await workerOn(taskQueue, {
    analyzeModelVersion: async () => ({ ops: { MatMul: 4 }, parameters: 1000, opset: 17, applicable: ['int4', 'int8-dynamic', 'fp16'], bytes: 4000, hasGolden: true }),
    quantizeCandidate: async (i: { method: string }) => ({ method: i.method, key: i.method, sha256: 'x', bytes: { int4: 500, 'int8-dynamic': 1000, fp16: 2000 }[i.method]!, quantizedNodes: 4, weightRatio: 0.25, excludeNodes: [] }),
    evaluateModelCandidate: async (i: { candidateKey: string }) => {
      if (i.candidateKey === 'int4') throw ApplicationFailure.nonRetryable('onnxruntime crashed (SIGSEGV) loading or running the candidate', 'CandidateCrashed');
      return { top1Agreement: 1, cosine: { mean: 0.999, min: 0.999 }, maxAbsDiff: 0, samples: 8, latencyMs: { reference: 1, candidate: 1, ratio: 1 } };
    },
    rankSensitiveNodes: async () => [],
    registerQuantized: async () => ({ id: 'default/m/1-int8-dynamic', version: '1-int8-dynamic' }),
  });
  const progress = await worker.runUntil(() => client.workflow.execute(modelQuantization, {
    workflowId: `quantize/wf-${uid()}`, taskQueue,
    args: [{ modelId: 'default/m/1', modelsQueue: taskQueue, inferenceQueue: taskQueue }],
  }));
  assert.deepEqual(progress.candidates.map((c) => [c.method, c.fits, c.failure ?? null]), [
    ['int4', false, 'onnxruntime crashed (SIGSEGV) loading or running the candidate'], ['int8-dynamic', true, null], ['fp16', true, null],
  ]);
  assert.equal(progress.chosen!.method, 'int8-dynamic');
});

test('modelQuantization: the smallest candidate is passed over when it runs more than twice as slow as fp32 (by default); the budget can allow it; nothing fast enough fails naming the latency', async () => {
  const taskQueue = `wf-quant-${uid()}`;
  // int8-static is the smallest and as accurate, but ×3.9 slower (as on PaddleOCR's classifier).
  const slowdown: Record<string, number> = { 'int8-static': 3.9, 'int8-dynamic': 1.1, fp16: 1.05 };
  const worker = await workerOn(taskQueue, {
    analyzeModelVersion: async () => ({ ops: { Conv: 4 }, parameters: 1000, opset: 17, applicable: ['int8-static', 'int8-dynamic', 'fp16'], bytes: 4000, hasGolden: true }),
    quantizeCandidate: async (i: { method: string }) => ({ method: i.method, key: i.method, sha256: 'x', bytes: { 'int8-static': 900, 'int8-dynamic': 1000, fp16: 2000 }[i.method]!, quantizedNodes: 4, weightRatio: 0.25, excludeNodes: [] }),
    evaluateModelCandidate: async (i: { candidateKey: string }) => ({ top1Agreement: 1, cosine: { mean: 0.999, min: 0.999 }, maxAbsDiff: 0, samples: 8, latencyMs: { reference: 1, candidate: slowdown[i.candidateKey]!, ratio: slowdown[i.candidateKey]! } }),
    rankSensitiveNodes: async () => [],
    registerQuantized: async (i: { candidate: { method: string } }) => ({ id: `default/m/1-${i.candidate.method}`, version: `1-${i.candidate.method}` }),
  });
  const run = (budget?: { latencyRatio?: number }, methods?: string[]) => client.workflow.execute(modelQuantization, {
    workflowId: `quantize/wf-${uid()}`, taskQueue,
    args: [{ modelId: 'default/m/1', modelsQueue: taskQueue, inferenceQueue: taskQueue, ...(budget ? { budget } : {}), ...(methods ? { methods: methods as Array<'int8-static'> } : {}) }],
  });
  await worker.runUntil(async () => {
    const progress = await run();
    assert.deepEqual(progress.budget, { top1: 0.99, cosine: 0.99, latencyRatio: 2 });
    assert.deepEqual(progress.candidates.map((c) => [c.method, c.latencyRatio, c.fits]), [['int8-static', 3.9, false], ['int8-dynamic', 1.1, true], ['fp16', 1.05, true]]);
    assert.equal(progress.chosen!.method, 'int8-dynamic');
    assert.equal((await run({ latencyRatio: 5 })).chosen!.method, 'int8-static');
    await assert.rejects(run(undefined, ['int8-static']), (err: Error) => /latency ≤ ×2 fp32's\); closest: int8-static top-1 1\.0000 cosine 0\.99900 latency ×3\.90/.test(String((err.cause as Error)?.message)));
  });
});

test('modelQuantization: a recurrent net also tries int4 with its LSTM weights in 4-bit blocks, and registers it when it is the smallest within budget', async () => {
  const taskQueue = `wf-quant-${uid()}`;
  const asked: Array<{ method: string; int4Recurrent?: boolean }> = [];
  const worker = await workerOn(taskQueue, {
    analyzeModelVersion: async () => ({ ops: { LSTM: 2, MatMul: 1 }, parameters: 1000, opset: 17, applicable: ['int4', 'int8-dynamic'], bytes: 4000, hasGolden: true }),
    quantizeCandidate: async (i: { method: string; int4Recurrent?: boolean }) => {
      asked.push(i.int4Recurrent ? { method: i.method, int4Recurrent: true } : { method: i.method });
      return { method: i.method, ...(i.int4Recurrent ? { int4Recurrent: true } : {}), key: `${i.method}${i.int4Recurrent ? '-rnn' : ''}`, sha256: 'x', bytes: i.int4Recurrent ? 700 : i.method === 'int4' ? 1000 : 1100, quantizedNodes: 3, weightRatio: 0.25, excludeNodes: [] };
    },
    evaluateModelCandidate: async () => ({ top1Agreement: 1, cosine: { mean: 0.995, min: 0.99 }, maxAbsDiff: 0, samples: 8, latencyMs: { reference: 1, candidate: 1, ratio: 1 } }),
    rankSensitiveNodes: async () => [],
    registerQuantized: async (i: { candidate: { method: string; int4Recurrent?: boolean } }) => ({ id: `default/m/1-${i.candidate.method}${i.candidate.int4Recurrent ? '-rnn' : ''}`, version: 'v' }),
  });
  const progress = await worker.runUntil(() => client.workflow.execute(modelQuantization, {
    workflowId: `quantize/wf-${uid()}`, taskQueue, args: [{ modelId: 'default/m/1', modelsQueue: taskQueue, inferenceQueue: taskQueue }],
  }));
  assert.deepEqual(asked, [{ method: 'int4' }, { method: 'int4', int4Recurrent: true }, { method: 'int8-dynamic' }]);
  assert.deepEqual(progress.chosen, { id: 'default/m/1-int4-rnn', version: 'v', method: 'int4', int4Recurrent: true, bytes: 700 });
});

// ---- modelRollout: its decisions driven by scripted per-arm checks

type Check = { decision?: 'promote' | 'rollback' | 'continue'; srmP?: number };
function rolloutStubs(checks: Check[]) {
  const calls: string[] = [];
  let i = 0;
  const activities = {
    moveCandidateStage: async (x: { to: string; actor: string }) => { calls.push(`stage:${x.to}`); },
    setRolloutShare: async (x: { share: number }) => { calls.push(`share:${x.share}`); },
    checkRollout: async () => {
      const c = checks[Math.min(i++, checks.length - 1)]!;
      calls.push(`check:${c.srmP !== undefined ? 'srm' : c.decision}`);
      const arms = [{ variant: 'control', models: ['m/1'], n: 500, agreed: 450, failed: 0 }, { variant: 'default/m@2', models: ['m/2'], n: 500, agreed: 450, failed: 0 }];
      return { flag: 'f', arms, srm: { p: c.srmP ?? 0.5 }, verdict: c.decision ? { decision: c.decision, estimate: 0, interval: [-0.01, 0.01] as [number, number], why: `scripted ${c.decision}` } : null };
    },
  };
  return { calls, activities };
}

async function runRollout(s: ReturnType<typeof rolloutStubs>, drive?: (handle: WorkflowHandle<typeof modelRollout>) => Promise<void>, input: Partial<ModelRolloutInput> = {}) {
  const taskQueue = `wf-test-${uid()}`;
  const worker = await workerOn(taskQueue, s.activities);
  return worker.runUntil(async () => {
    const handle = await client.workflow.start(modelRollout, {
      workflowId: `rollout/test/${uid()}`, taskQueue, args: [{ project: 'p', flag: 'layer3.m', candidate: 'default/m/2', ...input }],
    });
    if (drive) await drive(handle);
    // Checks are a minute apart (the default checkSeconds).
    return skipUntilDone<RolloutState>(handle, 60_000);
  });
}

test('modelRollout ramps on promote verdicts (5 → 25 → 50%), then promotes to production at 100%', async () => {
  const s = rolloutStubs([{ decision: 'continue' }, { decision: 'promote' }, { decision: 'promote' }, { decision: 'promote' }]);
  const r = await runRollout(s);
  assert.equal(r.status, 'promoted');
  assert.deepEqual(s.calls, ['stage:canary', 'share:0.05', 'check:continue', 'check:promote', 'share:0.25', 'check:promote', 'share:0.5', 'check:promote', 'share:1', 'stage:production']);
  assert.equal(r.last?.decision, 'promote');
});

test('modelRollout rolls back on a rollback verdict: the control gets every sample, the candidate returns to validated', async () => {
  const s = rolloutStubs([{ decision: 'continue' }, { decision: 'rollback' }]);
  const r = await runRollout(s);
  assert.equal(r.status, 'rolled_back');
  assert.deepEqual(s.calls.slice(-2), ['share:0', 'stage:validated']);
  assert.match(r.log.at(-1)!.why, /scripted rollback/);
});

test('modelRollout holds on a sample-ratio mismatch until resumed; pause and abort are recorded with who', async () => {
  const s = rolloutStubs([{ srmP: 1e-6 }, { decision: 'continue' }]);
  await runRollout(s, async (handle) => {
    // The first check is a minute in (the default): past it, the rollout holds.
    await env.sleep('61 seconds');
    await waitUntil('the rollout held', async () => (await handle.query(rolloutStateQuery)).status === 'held', 10_000);
    const held = await handle.query(rolloutStateQuery);
    assert.equal(held.status, 'held');
    assert.match(held.log.at(-1)!.why, /sample-ratio mismatch/);
    await handle.signal(resumeRolloutSignal, { by: 'olga', reason: 'fixed the router' });
    await handle.signal(pauseRolloutSignal, {} as never); // no `by`: refused, recorded
    await handle.signal(pauseRolloutSignal, { by: 'olga', reason: 'weekend' });
    assert.equal((await handle.query(rolloutStateQuery)).status, 'paused');
    await handle.signal(abortRolloutSignal, { by: 'olga', reason: 'model owner asked' });
  }).then((r) => {
    assert.equal(r.status, 'rolled_back');
    assert.deepEqual(r.log.map((l) => `${l.what}/${l.by}`).slice(1), ['held/' + r.log[1]!.by, 'resumed/olga', 'pause refused/unknown', 'paused/olga', 'rolled_back/olga']);
    assert.match(r.log.at(-1)!.why, /aborted: model owner asked/);
  });
});

test('modelRollout: force-promote is recorded with who; bad input fails at once', async () => {
  const s = rolloutStubs([{ decision: 'continue' }]);
  const r = await runRollout(s, async (handle) => { await handle.signal(forcePromoteSignal, { by: 'lead', reason: 'deadline' }); });
  assert.equal(r.status, 'promoted');
  assert.deepEqual(r.log.at(-1), { ...r.log.at(-1)!, what: 'promoted', by: 'lead', why: 'forced: deadline' });
  await assert.rejects(runRollout(rolloutStubs([]), undefined, { steps: [0.5, 0.2, 1] }), (e: Error) => /steps must be two or more increasing shares/.test(String((e.cause as Error | undefined)?.message)));
});
