import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { fixtureGolden, mlpModel } from '../../src/onnx/fixture-models';
import { checkModelVersion, goldenOutputsKey, registerModel } from '../../src/models/register';
import { getModelVersion, resolveModelRefs } from '../../src/store/models';
import { modelEvents } from '../../src/store/model-lifecycle';
import { goldenToJsonl } from '../../src/quantize/evaluate';
import { getObjectText, putObject } from '../../src/clients/minio';
import { modelQuantization } from '../../workflows';
import { quantizationProgressQuery, workflowIds, type ModelQuantizationInput, type QuantizationProgress } from '../../workflows/definitions';
import { harness, uid, type Harness } from './helpers';

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
  // All fit the default budget; int4 is the smallest file.
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
  const tampered = (await getObjectText(h.store, outputsKey)).replace(/"data":\[(-?[0-9.e-]+)/, (_m, v: string) => `"data":[${Number(v) + 0.5}`);
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
});

test('a model without golden inputs, or an unknown one, fails at once with what to do', async () => {
  const f = await mlpModel();
  const v = await registerModel(h.pool, h.store, { name: `bare-${uid()}`, version: '1', onnx: f.onnx, manifest: MANIFEST }, 'test');
  await assert.rejects(run({ modelId: v.id }), (err: Error) => /has no golden inputs; re-register it with --golden/.test(String((err.cause as Error)?.message)));
  await assert.rejects(run({ modelId: 'default/nope/1' }), (err: Error) => /is not registered/.test(String((err.cause as Error)?.cause ?? (err.cause as Error)?.message)));
});
