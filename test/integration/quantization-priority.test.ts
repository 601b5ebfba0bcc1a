import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import { fixtureGolden, mlpModel } from '../../src/onnx/fixture-models';
import { registerModel } from '../../src/models/register';
import { goldenToJsonl } from '../../src/quantize/evaluate';
import { modelQuantization } from '../../workflows';
import { workflowIds } from '../../workflows/definitions';
import { startModelsWorker } from '../../workers/models';
import { harness, uid, waitUntil, type Harness } from './helpers';
import type { RunningWorker } from '../../workers/runtime';

// The models worker starts only once every job is queued, so the server must choose the order.
let h: Harness;
let models: RunningWorker | undefined;
before(async () => {
  h = await harness({ worker: true, inference: true });
});
after(async () => {
  await models?.shutdown();
  await h.close();
});

async function firstActivityStart(handle: WorkflowHandle): Promise<number> {
  const history = await handle.fetchHistory();
  const started = history.events!.find((e) => e.activityTaskStartedEventAttributes);
  const t = started!.eventTime!;
  return Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

test('an urgent quantization job runs before background jobs queued earlier (Temporal priority keys)', async () => {
  const f = await mlpModel();
  const golden = goldenToJsonl(fixtureGolden(f, 30));
  const manifest = { labels: Array.from({ length: 10 }, (_, i) => `c${i}`), adapter: { kind: 'features', fields: ['/features'] } };
  const start = async (priorityKey: number): Promise<WorkflowHandle> => {
    const v = await registerModel(h.pool, h.store, { name: `prio-${uid()}`, version: '1', onnx: f.onnx, manifest, golden }, 'test');
    return h.client.workflow.start(modelQuantization, {
      workflowId: workflowIds.quantize(v.id), taskQueue: h.cfg.taskQueues.cpu, priority: { priorityKey },
      args: [{ modelId: v.id, methods: ['int8-dynamic'], modelsQueue: h.cfg.taskQueues.models, inferenceQueue: h.cfg.taskQueues.inference }],
    });
  };
  const background = [await start(5), await start(5), await start(5)];
  const urgent = await start(1);
  // Every job's first activity is scheduled and waiting for a models worker.
  await waitUntil('four queued analyze activities', async () => {
    const pending = await Promise.all([...background, urgent].map(async (w) => (await w.describe()).raw.pendingActivities?.length ?? 0));
    return pending.every((n) => n > 0);
  });
  models = await startModelsWorker(h.cfg);
  await Promise.all([...background, urgent].map((w) => w.result()));
  const urgentAt = await firstActivityStart(urgent);
  for (const b of background) assert.ok(urgentAt < await firstActivityStart(b), 'the urgent job started first');
});
