import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { cnnModel, fixtureGolden, mlpModel, rng } from '../../src/onnx/fixture-models';
import { F32, floatTensor, int64Tensor, model, node, valueInfo } from '../../src/onnx/build';
import { checkModelVersion, goldenOutputsKey, registerModel } from '../../src/models/register';
import { getModelVersion, resolveModelRefs } from '../../src/store/models';
import { modelEvents } from '../../src/store/model-lifecycle';
import { goldenToJsonl } from '../../src/quantize/evaluate';
import { parseGoldenOutput, tensorValues } from '../../src/quantize/golden-outputs';
import { getObjectText, putObject } from '../../src/clients/minio';
import { modelQuantization } from '../../workflows';
import { quantizationProgressQuery, rolloutStateQuery, workflowIds, type ModelQuantizationInput, type QuantizationProgress } from '../../workflows/definitions';
import { createTestProject, harness, ingestLines, uid, waitUntil, type Harness } from './helpers';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { wordTokenizerJson } from '../../src/onnx/reference-models';
import { decodeModel, encodeModel } from '../../src/onnx/proto';
import { quantizeModel } from '../../src/quantize/quantize-model';
import { textAdapter } from '../../src/qc/inference/adapters';
import { loadFlags } from '../../src/store/flags';
import { aliasesOf } from '../../src/store/model-lifecycle';
import { TORCH_MODELS, TORCH_MODELS_DIR } from '../fixtures/torch-models';
import { modelRollout } from '../../workflows';

let h: Harness;
before(async () => {
  h = await harness({ worker: true, inference: true, models: true });
});
after(() => h.close());

const MANIFEST = { labels: Array.from({ length: 10 }, (_, i) => `c${i}`), adapter: { kind: 'features', fields: ['/features'] } };

async function registerFixture(): Promise<string> {
  const f = await mlpModel();
  const name = `mlp-${uid()}`;
  const v = await registerModel(h.pool, h.store, { name, version: '1', onnx: f.onnx, manifest: MANIFEST, golden: goldenToJsonl(fixtureGolden(f, 100)) }, 'test');
  return v.id;
}

/**
 * `work`, or after `ms` a failure that says where it stood (`state`): once, in a clean-clone CI run, the
 * trained-classifier test below sat 9 minutes without a log line, and a hang says nothing.
 */
async function within<T>(ms: number, what: string, work: Promise<T>, state: () => Promise<unknown>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => void state().then((s) => reject(new Error(`${what}: not done after ${ms / 1000} s; state ${JSON.stringify(s)}`)), (err: Error) => reject(new Error(`${what}: not done after ${ms / 1000} s (${err.message})`))), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

function run(input: Omit<ModelQuantizationInput, 'modelsQueue' | 'inferenceQueue'>): Promise<QuantizationProgress> {
  return h.client.workflow.execute(modelQuantization, {
    workflowId: `${workflowIds.quantize(input.modelId)}-${uid()}`, taskQueue: h.cfg.taskQueues.cpu,
    args: [{ ...input, modelsQueue: h.cfg.taskQueues.models, inferenceQueue: h.cfg.taskQueues.inference }],
  });
}

test('quantize → evaluate → register through Temporal: the smallest candidate within budget, with lineage', async () => {
  const modelId = await registerFixture();
  const result = await run({ modelId });
  assert.equal(result.stage, 'done');
  assert.deepEqual(result.candidates.map((c) => c.method), ['int4', 'int8-static', 'int8-dynamic', 'fp16']);
  // All fit the default budget (latency too: at most twice fp32's, measured); int4 is the smallest file.
  assert.equal(result.budget.latencyRatio, 2);
  assert.ok(result.candidates.every((c) => c.latencyRatio! > 0 && c.latencyRatio! <= 2 && c.fits), JSON.stringify(result.candidates));
  assert.equal(result.chosen!.method, 'int4');
  const child = (await getModelVersion(h.pool, result.chosen!.id))!;
  assert.equal(child.parentId, modelId);
  assert.equal(child.precision, 'int4');
  assert.equal((child.metrics as { method: string }).method, 'int4');
  // Passing the golden outputs within budget is what `validated` means: ready for a rollout against its parent.
  assert.equal(child.stage, 'validated');
  assert.match((await modelEvents(h.pool, child.id))[0]!.reason, /golden outputs within budget \(top-1 agreement 1\.0000|0\.99/);
  assert.ok((child.metrics as { evaluation: { top1Agreement: number } }).evaluation.top1Agreement >= 0.99);
  // The child keeps the golden inputs for later regression checks.
  assert.ok(child.goldenKey);
  assert.equal((await getObjectText(h.store, child.goldenKey)).split('\n').filter(Boolean).length, 100);
  // Regression check: both versions reproduce the outputs stored at registration; tampered ones are caught.
  for (const id of [modelId, child.id]) assert.equal((await checkModelVersion(h.pool, h.store, id)).maxAbsError, 0);
  const outputsKey = goldenOutputsKey(child.goldenKey);
  const [first, ...rest] = (await getObjectText(h.store, outputsKey)).split('\n');
  const line = parseGoldenOutput(first!);
  const [outputName, t] = Object.entries(line.outputs)[0]!;
  const values = Float32Array.from(tensorValues(t));
  values[0]! += 0.5;
  const tampered = [JSON.stringify({ outputs: { ...line.outputs, [outputName]: { ...t, base64: Buffer.from(values.buffer).toString('base64') } } }), ...rest].join('\n');
  await putObject(h.store, outputsKey, tampered, 'application/x-ndjson');
  assert.ok(Math.abs((await checkModelVersion(h.pool, h.store, child.id)).maxAbsError - 0.5) < 1e-3);
  // A bare reference still resolves to the fp32 parent until a rollout says otherwise.
  const [name] = modelId.split('/').slice(1);
  assert.equal((await resolveModelRefs(h.pool, [name!]))[0]!.id, modelId);
  assert.equal((await resolveModelRefs(h.pool, [`${name}@${child.version}`]))[0]!.id, child.id);
});

test('a tighter budget makes the search pick a different method; an impossible one fails, naming the closest, and registers nothing', async () => {
  const modelId = await registerFixture();
  const tight = await run({ modelId, budget: { cosine: 0.9999 } });
  assert.equal(tight.candidates.find((c) => c.method === 'int4')!.fits, false);
  assert.match(tight.chosen!.method, /^int8-(static|dynamic)$/);

  const before = (await h.pool.query('SELECT count(*) AS n FROM model_versions')).rows[0].n;
  const handle = await h.client.workflow.start(modelQuantization, {
    workflowId: `${workflowIds.quantize(modelId)}-${uid()}`, taskQueue: h.cfg.taskQueues.cpu,
    args: [{ modelId, budget: { cosine: 1.0000001 }, methods: ['int8-dynamic'], modelsQueue: h.cfg.taskQueues.models, inferenceQueue: h.cfg.taskQueues.inference }],
  });
  await assert.rejects(handle.result(), (err: Error) => err instanceof WorkflowFailedError && /no candidate of .* meets the budget .* closest: int8-dynamic/.test(String((err.cause as Error)?.message)));
  const progress = await handle.query(quantizationProgressQuery);
  // The retry kept the most error-sensitive nodes in fp32 before giving up.
  assert.ok(progress.sensitiveNodes!.length >= 2);
  assert.ok(progress.candidates.some((c) => c.excludeNodes.length > 0));
  assert.equal((await h.pool.query('SELECT count(*) AS n FROM model_versions')).rows[0].n, before);

  // int8-static's nodes are ranked on its own calibrated ranges (they were once ranked with no ranges at
  // all, which failed the workflow with "needs a calibration set" instead of retrying).
  const staticOnly = await h.client.workflow.start(modelQuantization, {
    workflowId: `${workflowIds.quantize(modelId)}-${uid()}`, taskQueue: h.cfg.taskQueues.cpu,
    args: [{ modelId, budget: { cosine: 1.0000001 }, methods: ['int8-static'], modelsQueue: h.cfg.taskQueues.models, inferenceQueue: h.cfg.taskQueues.inference }],
  });
  await assert.rejects(staticOnly.result(), (err: Error) => err instanceof WorkflowFailedError && /no candidate of .* meets the budget .* closest: int8-static/.test(String((err.cause as Error)?.message)));
  const staticProgress = await staticOnly.query(quantizationProgressQuery);
  assert.ok(staticProgress.sensitiveNodes!.length >= 2 && staticProgress.sensitiveNodes![0]!.cosineLoss > 0, JSON.stringify(staticProgress.sensitiveNodes));
  assert.ok(staticProgress.candidates.some((c) => c.method === 'int8-static' && c.excludeNodes.length > 0));
});

test('a version registered with a calibration set: int4 GPTQ and int8-static ranges are fitted to it, not to the golden inputs that judge them; GPTQ is closer than rounding', async () => {
  const f = await mlpModel();
  const golden = goldenToJsonl(fixtureGolden(f, 100));
  const calibration = goldenToJsonl(fixtureGolden(f, 40, { seed: 5 }));
  const name = `mlp-cal-${uid()}`;
  // Refused by line and field, and for feeding other inputs, before anything is stored.
  await assert.rejects(registerModel(h.pool, h.store, { name, version: '1', onnx: f.onnx, manifest: MANIFEST, golden, calibration: `${calibration.split('\n')[0]}\n{"input": {"dims": [1, 2], "data": [1]}}\n` }, 'test'), /calibration line 2: input input has 1 values for dims \[1, 2\]/);
  await assert.rejects(registerModel(h.pool, h.store, { name, version: '1', onnx: f.onnx, manifest: MANIFEST, golden, calibration: calibration.replaceAll('"input"', '"other"') }, 'test'), /calibration: line 1 feeds inputs other; the golden inputs feed input\b/);
  assert.equal(await getModelVersion(h.pool, `default/${name}/1`), undefined);
  const fitted = await registerModel(h.pool, h.store, { name, version: '1', onnx: f.onnx, manifest: MANIFEST, golden, calibration }, 'test');
  assert.equal(fitted.calibrationKey, `models/default/${name}/1/calibration.jsonl`);
  const [calibrated, rounded] = [await run({ modelId: fitted.id, methods: ['int4'] }), await run({ modelId: await registerFixture(), methods: ['int4'] })];
  const child = (await getModelVersion(h.pool, calibrated.chosen!.id))!;
  assert.deepEqual([(child.metrics as { fittedTo?: string }).fittedTo, (child.metrics as { gptqUsed?: boolean }).gptqUsed], ['calibration', true]);
  const [a, b] = [calibrated.candidates[0]!, rounded.candidates[0]!];
  assert.equal(a.bytes, b.bytes);
  assert.ok(1 - a.cosine < 0.9 * (1 - b.cosine), `GPTQ ${a.cosine} vs rounded ${b.cosine} on the golden inputs`);
  // int8-static's ranges come from the calibration set too.
  const int8 = (await getModelVersion(h.pool, (await run({ modelId: fitted.id, methods: ['int8-static'] })).chosen!.id))!;
  assert.deepEqual([int8.version, (int8.metrics as { fittedTo?: string }).fittedTo], ['1-int8-static', 'calibration']);
});

test('a conv net also tries int4 with its Convs in 4-bit blocks: rounded it misses the budget, fitted to a calibration set it is chosen at three quarters of int4\'s size', async (t) => {
  const f = await cnnModel();
  const golden = goldenToJsonl(fixtureGolden(f, 40));
  const register = async (calibration?: string) => (await registerModel(h.pool, h.store, { name: `cnn-${uid()}`, version: '1', onnx: f.onnx, manifest: MANIFEST, golden, calibration }, 'test')).id;
  const [rounded, fitted] = [await run({ modelId: await register(), methods: ['int4'] }), await run({ modelId: await register(goldenToJsonl(fixtureGolden(f, 20, { seed: 5 }))), methods: ['int4'] })];
  t.diagnostic(`rounded: ${JSON.stringify(rounded.candidates.map((c) => [c.int4Conv ?? false, c.bytes, c.cosine.toFixed(4)]))}; fitted: ${JSON.stringify(fitted.candidates.map((c) => [c.int4Conv ?? false, c.bytes, c.cosine.toFixed(4)]))}`);
  for (const r of [rounded, fitted]) assert.deepEqual(r.candidates.map((c) => c.int4Conv ?? false), [false, true]);
  const [plain, conv] = fitted.candidates;
  assert.ok(conv!.bytes < 0.85 * plain!.bytes && conv!.fits, JSON.stringify(fitted.candidates));
  assert.deepEqual([fitted.chosen!.int4Conv, fitted.chosen!.version], [true, '1-int4-conv']);
  assert.ok(!rounded.candidates[1]!.fits && rounded.chosen!.int4Conv === undefined, JSON.stringify(rounded.candidates));
});

test('a recurrent net also tries int4 with its LSTM weights in 4-bit blocks: smaller, and registered as {version}-int4-rnn when it fits', async (t) => {
  // An LSTM over 6 steps of 64 features, its last hidden states read by a 10-class MatMul head.
  const [T, I, H] = [6, 64, 32];
  const r = rng(21);
  const weights = (n: number, scale: number) => Array.from({ length: n }, () => (r() - 0.5) * scale);
  const m = model({
    name: 'lstm', opset: 17, inputs: [valueInfo('features', F32, [T, 1, I])], outputs: [valueInfo('logits', F32, [1, 10])],
    initializers: [floatTensor('W', [1, 4 * H, I], weights(4 * H * I, 0.6)), floatTensor('R', [1, 4 * H, H], weights(4 * H * H, 0.6)), int64Tensor('flat', [2], [1, T * H]), floatTensor('head', [T * H, 10], weights(T * H * 10, 0.5))],
    nodes: [node('LSTM', ['features', 'W', 'R'], ['y'], { hidden_size: H }, 'lstm'), node('Reshape', ['y', 'flat'], ['h'], {}, 'flatten'), node('MatMul', ['h', 'head'], ['logits'], {}, 'head')],
  });
  const golden = Array.from({ length: 40 }, () => ({ inputs: { features: { dims: [T, 1, I], data: Float32Array.from(weights(T * I, 2)) } } }));
  const v = await registerModel(h.pool, h.store, { name: `lstm-${uid()}`, version: '1', onnx: encodeModel(m), manifest: MANIFEST, golden: goldenToJsonl(golden) }, 'test');
  // Its random head's classes are close calls: top-1 is loosened, cosine is not.
  const result = await run({ modelId: v.id, methods: ['int4'], budget: { top1: 0.85 } });
  t.diagnostic(JSON.stringify(result.candidates.map((c) => [c.int4Recurrent ?? false, c.bytes, c.top1, c.cosine.toFixed(4), c.fits])));
  assert.deepEqual(result.candidates.map((c) => c.int4Recurrent ?? false), [false, true]);
  const [plain, recurrent] = result.candidates;
  assert.ok(recurrent!.bytes < 0.8 * plain!.bytes, JSON.stringify(result.candidates));
  // The smallest that fits: the 4-bit LSTM (cosine 0.994 against 0.998).
  assert.ok(plain!.fits && recurrent!.fits, JSON.stringify(result.candidates));
  assert.deepEqual([result.chosen!.int4Recurrent, result.chosen!.version], [true, '1-int4-rnn']);
});

test('a scripted torch RNN (its cell in a Loop body) also tries int4 with the body\'s weights in 4-bit blocks, and registers the smaller when it fits', async (t) => {
  const m = TORCH_MODELS.find((x) => x.file === 'loop-rnn.onnx')!;
  const v = await registerModel(h.pool, h.store, { name: `loop-${uid()}`, version: '1', onnx: readFileSync(path.join(TORCH_MODELS_DIR, m.file)), manifest: MANIFEST, golden: goldenToJsonl(m.golden()) }, 'test');
  // Its outputs are states, not classes: top-1 is not what it is judged on.
  const result = await run({ modelId: v.id, methods: ['int4'], budget: { top1: 0, cosine: 0.99 } });
  t.diagnostic(JSON.stringify(result.candidates.map((c) => [c.int4Recurrent ?? false, c.bytes, c.cosine.toFixed(4), c.fits])));
  assert.deepEqual(result.candidates.map((c) => c.int4Recurrent ?? false), [false, true]);
  const [plain, looped] = result.candidates;
  assert.ok(looped!.bytes < 0.8 * plain!.bytes && looped!.fits, JSON.stringify(result.candidates));
  assert.deepEqual([result.chosen!.int4Recurrent, result.chosen!.version], [true, '1-int4-rnn']);
});

test('a model without golden inputs, or an unknown one, fails at once with what to do', async () => {
  const f = await mlpModel();
  const v = await registerModel(h.pool, h.store, { name: `bare-${uid()}`, version: '1', onnx: f.onnx, manifest: MANIFEST }, 'test');
  await assert.rejects(run({ modelId: v.id }), (err: Error) => /has no golden inputs; re-register it with --golden/.test(String((err.cause as Error)?.message)));
  await assert.rejects(run({ modelId: 'default/nope/1' }), (err: Error) => /is not registered/.test(String((err.cause as Error)?.cause ?? (err.cause as Error)?.message)));
});

/** The trained torch classifier of test/fixtures/models (export_trained.py), as it is registered. */
function petClassifier() {
  const { labels, words } = JSON.parse(readFileSync(path.join(TORCH_MODELS_DIR, 'pet-classifier.vocab.json'), 'utf8')) as { labels: string[]; words: string[] };
  return {
    labels, onnx: readFileSync(path.join(TORCH_MODELS_DIR, 'pet-classifier.onnx')), tokenizer: wordTokenizerJson(words),
    manifest: { labels, output: 'logits', adapter: { kind: 'text' as const, textPointer: '/text', maxLength: 32 } },
  };
}

test('the loop on a torch-exported, trained classifier: quantized, validated on golden outputs, canaried against its fp32 parent on live samples by layer 3, and promoted', async () => {
  // A real export (test/fixtures/models/export_trained.py): one input named `ids`, a dynamic batch axis, torch's own graph.
  const { labels, onnx, tokenizer, manifest } = petClassifier();
  const texts = (n: number) => Array.from({ length: n }, (_, i) => {
    const label = labels[i % 3]!;
    const cue = { cat: ['kitten', 'meow', 'purr'], dog: ['puppy', 'woof', 'bark'], bird: ['nest', 'chirp', 'wing'] }[label]![i % 3]!;
    return { label, text: `the little ${cue} number ${i} was in our garden today` };
  });
  const prepared = await textAdapter(manifest.adapter, tokenizer).prepare(texts(48).map((t) => ({ payload: { text: t.text } })));
  const ids = prepared.feeds.input_ids!.data as BigInt64Array;
  const golden = Array.from({ length: 48 }, (_, i) => ({ inputs: { ids: { dims: [1, 32], data: ids.slice(i * 32, (i + 1) * 32) } } }));
  const name = `pets-${uid()}`;
  const parent = await registerModel(h.pool, h.store, { name, version: '1', onnx, manifest, tokenizer, golden: goldenToJsonl(golden) }, 'test');

  // Past an evaluation child's watchdog (5 minutes), so a hung candidate is reported as crashed and the search goes on.
  const workflowId = `${workflowIds.quantize(parent.id)}-${uid()}`;
  const quantizing = h.client.workflow.execute(modelQuantization, { workflowId, taskQueue: h.cfg.taskQueues.cpu, args: [{ modelId: parent.id, modelsQueue: h.cfg.taskQueues.models, inferenceQueue: h.cfg.taskQueues.inference }] });
  const quantized = await within(7 * 60_000, 'quantization', quantizing, () => h.client.workflow.getHandle(workflowId).query(quantizationProgressQuery));
  assert.equal(quantized.stage, 'done');
  const candidate = (await getModelVersion(h.pool, quantized.chosen!.id))!;
  assert.equal(candidate.stage, 'validated');
  assert.notEqual(candidate.precision, 'fp32');

  const flag = `layer3.${name}`;
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: { classes: labels }, qcPolicy: { layer3: { models: [`${name}@1`], rollout: { flag } } } });
  const handle = await h.client.workflow.start(modelRollout, {
    workflowId: workflowIds.rollout(candidate.id), taskQueue: h.cfg.taskQueues.cpu,
    args: [{ project, flag, candidate: candidate.id, steps: [0.5, 1], minPerArm: 50, margin: 0.05, checkSeconds: 1 }],
  });
  await waitUntil('the rollout set its flag', async () => (await loadFlags(h.pool, [flag])).length === 1);
  const lines = texts(240).map((t, i) => JSON.stringify({ externalId: `p-${i}`, payload: { text: t.text, lang: 'en' }, annotations: [1, 2].map((a) => ({ annotator: `ann-${a}`, labels: { classes: [t.label] } })) }));
  const rolloutState = (): Promise<unknown> => handle.query(rolloutStateQuery);
  const ingested = await within(3 * 60_000, 'ingesting 240 samples', ingestLines(h, project, lines, 120), rolloutState);
  assert.equal(ingested.failedBatches.length, 0);
  assert.equal(ingested.counts.accepted, 240, JSON.stringify(ingested.counts));
  const result = await within(2 * 60_000, 'the rollout deciding', handle.result(), rolloutState);
  assert.equal(result.status, 'promoted', JSON.stringify(result.log));
  // Both arms scored live samples with their own model, and both read them as the crowd did.
  const { rows } = await h.pool.query<{ model_version: string; n: string; passed: string }>(
    `SELECT q.model_version, count(*) AS n, count(*) FILTER (WHERE q.passed) AS passed FROM qc_results q JOIN samples s ON s.id = q.sample_id
     WHERE s.project_id = $1 AND q.layer = 3 GROUP BY 1 ORDER BY 1`, [project],
  );
  assert.deepEqual(rows.map((r) => r.model_version).sort(), [parent.id, candidate.id].sort());
  for (const r of rows) assert.ok(Number(r.n) >= 50 && Number(r.passed) === Number(r.n), JSON.stringify(rows));
  assert.equal((await getModelVersion(h.pool, candidate.id))!.stage, 'production');
  assert.equal((await aliasesOf(h.pool, 'default', name)).production, candidate.id);
});

test('registering a model that crashes onnxruntime is refused with what to do, and the registering process lives on', async (t) => {
  const { onnx, tokenizer, manifest } = petClassifier();
  // Its fp16 form: a Transpose (1,0,2) before an fp16 MatMul, which this machine's onnxruntime segfaults on.
  const fp16 = encodeModel(quantizeModel(decodeModel(onnx), { method: 'fp16' }).model);
  const golden = goldenToJsonl([{ inputs: { ids: { dims: [1, 32], data: BigInt64Array.from({ length: 32 }, (_, i) => BigInt(i < 4 ? [2, 9, 40, 3][i]! : 0)) } } }]);
  const name = `pets16-${uid()}`;
  const outcome = await registerModel(h.pool, h.store, { name, version: '1', onnx: fp16, manifest, tokenizer, golden }, 'test').then(() => 'registered', (e: Error) => e.message);
  t.diagnostic(`fp16 pet classifier: ${outcome}`);
  if (outcome !== 'registered') {
    assert.match(outcome, /^golden inputs: onnxruntime crashed \(SIGSEGV\) loading or running the model: .*re-export the model/);
    assert.equal(await getModelVersion(h.pool, `default/${name}/1`), undefined, 'nothing was registered');
  }
});
