import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { insertModelVersion, listModelVersions, modelVersionId, type ModelVersionRow } from '../../src/store/models';
import { aliasesOf, lineage, LifecycleError, modelEvents, moveStage, setAlias } from '../../src/store/model-lifecycle';
import type { ModelManifest } from '../../src/qc/inference/manifest';
import { harness, REPO, uid, type Harness } from './helpers';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixtureGolden, mlpModel } from '../../src/onnx/fixture-models';
import { goldenToJsonl } from '../../src/quantize/evaluate';
import { samplesToArrow } from '../../src/quantize/calibration-data';
import { getObjectText, putObject } from '../../src/clients/minio';
import { parseGoldenOutput, tensorValues } from '../../src/quantize/golden-outputs';

let h: Harness;
before(async () => {
  h = await harness({ worker: false });
});
after(() => h.close());

const MANIFEST = { labels: ['a', 'b'], adapter: { kind: 'features', fields: ['/features'] } } as unknown as ModelManifest;

async function version(tenant: string, name: string, v: string, parentId: string | null = null, precision = 'fp32'): Promise<ModelVersionRow> {
  return insertModelVersion(h.pool, {
    id: modelVersionId(tenant, name, v), tenant, name, version: v, sha256: createHash('sha256').update(`${tenant}/${name}/${v}`).digest('hex'),
    objectKey: `models/${tenant}/${name}/${v}.onnx`, bytes: 1, manifest: MANIFEST, tokenizerKey: null, tokenizerSha256: null, precision, parentId, goldenKey: null, calibrationKey: null, metrics: {}, metadata: {},
  }, 'test');
}

test('lifecycle: allowed transitions only, each an append-only event with who and why; production moves the alias atomically; archive removes aliases', async () => {
  const tenant = `t${uid()}`;
  const v1 = await version(tenant, 'sent', '1');
  const v2 = await version(tenant, 'sent', '2');
  assert.equal(v1.stage, 'registered');
  await assert.rejects(moveStage(h.pool, v1.id, 'production', 'ann', 'skip ahead'), (e: Error) => e instanceof LifecycleError && /cannot become production; from registered it can become validated or archived/.test(e.message));
  for (const [v, stages] of [[v1, ['validated', 'canary', 'production']], [v2, ['validated', 'canary']]] as const) {
    for (const to of stages) await moveStage(h.pool, v.id, to, 'ann', `step to ${to}`);
  }
  assert.deepEqual(await aliasesOf(h.pool, tenant, 'sent'), { production: v1.id });
  await setAlias(h.pool, v2.id, 'candidate', 'ann', 'canary under test');
  await moveStage(h.pool, v2.id, 'production', 'bo', 'won its rollout');
  assert.deepEqual(await aliasesOf(h.pool, tenant, 'sent'), { candidate: v2.id, production: v2.id }, 'production moved to v2 in one step');
  await moveStage(h.pool, v1.id, 'archived', 'bo', 'superseded');
  await assert.rejects(moveStage(h.pool, v1.id, 'validated', 'bo', 'revive'), /archived version stays archived/);
  await assert.rejects(setAlias(h.pool, v1.id, 'old', 'bo', 'x'), /is archived/);
  await assert.rejects(setAlias(h.pool, v2.id, 'Bad Alias', 'bo', 'x'), /must match/);
  const events = await modelEvents(h.pool, v2.id);
  assert.deepEqual(events.map((e) => `${e.kind}:${e.from ?? ''}→${e.to} by ${e.actor}`), [
    'stage:registered→validated by ann', 'stage:validated→canary by ann', 'alias:→candidate by ann', 'stage:canary→production by bo', `alias:${v1.id}→production by bo`,
  ]);
  await assert.rejects(h.pool.query('UPDATE model_events SET actor = $1 WHERE version_id = $2', ['mallory', v2.id]), /append-only/);
  await assert.rejects(h.pool.query('DELETE FROM model_events WHERE version_id = $1', [v2.id]), /append-only/);
  assert.deepEqual((await listModelVersions(h.pool, { tenant, stage: 'production' })).map((v) => v.id), [v2.id]);
  assert.deepEqual((await listModelVersions(h.pool, { tenant, alias: 'candidate' })).map((v) => v.id), [v2.id]);
  assert.deepEqual((await listModelVersions(h.pool, { tenant, stage: 'archived' })).map((v) => v.id), [v1.id]);
});

test('lineage: ancestors and descendants through quantized and fine-tuned children', async () => {
  const tenant = `t${uid()}`;
  const base = await version(tenant, 'm', '1');
  const tuned = await version(tenant, 'm', '1-ft', base.id);
  const q8 = await version(tenant, 'm', '1-ft-int8', tuned.id, 'int8');
  const q4 = await version(tenant, 'm', '1-int4', base.id, 'int4');
  const up = await lineage(h.pool, q8.id);
  assert.deepEqual(up.ancestors.map((a) => a.id), [tuned.id, base.id]);
  assert.deepEqual(up.descendants, []);
  const down = await lineage(h.pool, base.id);
  assert.deepEqual(down.descendants.map((d) => d.id).sort(), [tuned.id, q8.id, q4.id].sort());
  assert.deepEqual(down.usedBy, []);
});

test('the CLI registers with golden inputs and a calibration set, promotes, refuses a skipped stage with what is allowed, and shows the events', async () => {
  const tenant = `t${uid()}`;
  const v = await version(tenant, 'cli', '1');
  const run = async (...args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'model', ...args], { cwd: REPO, env: { ...process.env, QCFLOW_LOG_LEVEL: 'silent' } }).then(
    (r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e,
  );
  const skipped = await run('promote', v.id, '--to', 'canary', '--reason', 'rush');
  assert.notEqual(skipped.code, 0);
  assert.match(skipped.stderr, /cannot become canary; from registered it can become validated or archived/);
  assert.equal((await run('promote', v.id, '--to', 'validated', '--reason', 'golden outputs match')).code, 0);
  const shown = JSON.parse((await run('show', v.id)).stdout) as { stage: string; events: Array<{ reason: string }> };
  assert.equal(shown.stage, 'validated');
  assert.equal(shown.events[0]!.reason, 'golden outputs match');
  assert.match((await run('list', '--tenant', tenant, '--stage', 'validated')).stdout, new RegExp(`${v.id}\\tvalidated`));
  // Registered with golden inputs and a calibration set apart from them (the quantization workflow fits to the latter).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-register-'));
  const f = await mlpModel();
  // The calibration set as Arrow IPC, as `model quantize --calibration` reads it too: stored as JSONL, inputs exact.
  const files = { file: 'model.onnx', manifest: 'manifest.json', golden: 'golden.jsonl', calibration: 'calibration.arrow' };
  writeFileSync(path.join(dir, files.file), f.onnx);
  writeFileSync(path.join(dir, files.manifest), JSON.stringify({ labels: Array.from({ length: 10 }, (_, i) => `c${i}`), adapter: { kind: 'features', fields: ['/features'] } }));
  writeFileSync(path.join(dir, files.golden), goldenToJsonl(fixtureGolden(f, 8)));
  const calibration = fixtureGolden(f, 16, { seed: 5 });
  writeFileSync(path.join(dir, files.calibration), samplesToArrow(calibration));
  const registered = await run('register', '--tenant', tenant, '--name', 'calibrated', '--version', '1', ...Object.entries(files).flatMap(([k, file]) => [`--${k}`, path.join(dir, file)]));
  assert.equal(registered.code, 0, registered.stderr);
  const calibrated = JSON.parse((await run('show', `${tenant}/calibrated/1`)).stdout) as { calibrationKey: string };
  assert.equal(calibrated.calibrationKey, `models/${tenant}/calibrated/1/calibration.jsonl`);
  assert.equal(await getObjectText(h.store, calibrated.calibrationKey), goldenToJsonl(calibration.map((c) => ({ inputs: c.inputs }))));
  // Its regression check passes as registered, and names the output that drifts once the stored ones are changed.
  const checked = await run('check', '--model', `${tenant}/calibrated/1`);
  assert.equal(checked.code, 0, checked.stderr);
  const report = JSON.parse(checked.stdout) as { ok: boolean; samples: number; outputs: Record<string, { maxAbsError: number }> };
  assert.deepEqual([report.ok, report.samples, Object.keys(report.outputs)], [true, 8, ['logits']]);
  const outputsKey = `models/${tenant}/calibrated/1/golden-outputs.jsonl`;
  const lines = (await getObjectText(h.store, outputsKey)).split('\n').filter(Boolean).map(parseGoldenOutput);
  const logits = Float32Array.from(tensorValues(lines[3]!.outputs.logits!));
  logits[2]! += 0.01;
  lines[3]!.outputs.logits!.base64 = Buffer.from(logits.buffer).toString('base64');
  await putObject(h.store, outputsKey, lines.map((l) => JSON.stringify(l)).join('\n'), 'application/x-ndjson');
  const drifted = await run('check', '--model', `${tenant}/calibrated/1`);
  assert.notEqual(drifted.code, 0);
  assert.match(drifted.stderr, /outputs drifted from those stored at registration \(tolerance 0\.0001\): logits by up to 0\.0099/);
  rmSync(dir, { recursive: true });
});
