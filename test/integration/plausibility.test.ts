import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { ingestFile } from '../../src/cli/ingest';
import { putObject } from '../../src/clients/minio';
import { registerModel } from '../../src/models/register';
import { bagOfWordsTextModel, tinyColorCnn } from '../../src/onnx/reference-models';
import { upsertProject } from '../../src/store/projects';
import { validateProjectDefinition } from '../../src/projects/definition';
import { resolveModelRefs } from '../../src/store/models';
import { batchProgressQuery, workflowIds, type BatchProgress } from '../../workflows/definitions';
import { modelRollout, qcBatch } from '../../workflows';
import { createTestProject, harness, uid, waitUntil, type Harness } from './helpers';
import { loadFlags, saveFlag } from '../../src/store/flags';
import { aliasesOf, moveStage } from '../../src/store/model-lifecycle';
import { getModelVersion } from '../../src/store/models';
import { bucketOf } from '../../src/rollout/bucketing';
import { rolloutStatus } from '../../src/store/rollout';
import { OpenFeature } from '@openfeature/server-sdk';

let h: Harness;
before(async () => {
  h = await harness({ worker: true, inference: true });
});
after(() => h.close());

const CUES = { cat: ['cat', 'meow', 'purr', 'kitten'], dog: ['dog', 'bark', 'woof', 'puppy'], bird: ['bird', 'tweet', 'wing', 'nest'] };
const ONTOLOGY = { classes: ['cat', 'dog', 'bird'] };

function line(id: string, text: string, label: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ externalId: id, payload: { text, lang: 'en' }, annotations: [1, 2].map((i) => ({ annotator: `ann-${i}`, labels: { classes: [label] } })), ...extra });
}

async function ingest(project: string, lines: string[]) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-l3-'));
  const file = path.join(dir, 'in.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  return ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 1000, wait: true });
}

async function layer3(project: string): Promise<Map<string, { status: string; score: number | null; passed: boolean; rules: string[]; reason: string; model: string | null; uncertainty: number | null }>> {
  const { rows } = await h.pool.query<{ external_id: string; status: string; score: number | null; passed: boolean; findings: Array<{ rule: string }>; reason: string; model_version: string | null; uncertainty: number | null }>(
    `SELECT s.external_id, s.status, q3.score, q3.passed, q3.findings, q3.model_version, (q3.details->>'uncertainty')::float AS uncertainty, q5.details->>'reason' AS reason
     FROM samples s JOIN qc_results q3 ON q3.sample_id = s.id AND q3.layer = 3 JOIN qc_results q5 ON q5.sample_id = s.id AND q5.layer = 5
     WHERE s.project_id = $1`, [project],
  );
  return new Map(rows.map((r) => [r.external_id, { status: r.status, score: r.score, passed: r.passed, rules: r.findings.map((f) => f.rule), reason: r.reason, model: r.model_version, uncertainty: r.uncertainty }]));
}

test('end to end through Temporal: a correctly labelled sample scores high, a mislabelled one low with the model\'s top labels', async () => {
  const name = `bow-${uid()}`;
  const m = bagOfWordsTextModel({ cues: CUES });
  await registerModel(h.pool, h.store, { name, version: '1', onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer }, 'test');
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { layer3: { models: [name] } } });
  await ingest(project, [
    line('right', 'the kitten says meow and purr', 'cat'),
    line('wrong', 'the puppy goes woof and bark', 'cat'),
    line('vague', 'an animal of some kind', 'bird'),
  ]);
  const r = await layer3(project);
  const right = r.get('right')!;
  const wrong = r.get('wrong')!;
  assert.ok(right.score! > 0.99, `correct label scored ${right.score}`);
  assert.ok(right.passed);
  assert.equal(right.model, `default/${name}/1`);
  assert.equal(right.status, 'accepted');
  assert.ok(wrong.score! < 0.01, `mislabelled sample scored ${wrong.score}`);
  assert.deepEqual(wrong.rules, ['layer3.model_disagrees']);
  assert.notEqual(wrong.status, 'accepted');
  const { rows } = await h.pool.query<{ findings: Array<{ message: string }>; top: Array<{ label: string }> }>(
    `SELECT q3.findings, q3.details->'top' AS top FROM samples s JOIN qc_results q3 ON q3.sample_id = s.id AND q3.layer = 3 WHERE s.project_id = $1 AND s.external_id = 'wrong'`, [project],
  );
  assert.equal(rows[0]!.top[0]!.label, 'dog');
  assert.match(rows[0]!.findings[0]!.message, /^model gives cat p=0\.000; its top labels: dog 1\.000, cat 0\.000, bird 0\.000$/);
  // No cue words: the model is unsure (uniform). Its probability equals the class prior, so it is no
  // evidence either way: layer 5's class risk stays what the annotators' agreement gave in layer 2.
  const vague = r.get('vague')!;
  assert.ok(Math.abs(vague.score! - 1 / 3) < 1e-6 && vague.uncertainty! > 0.999, JSON.stringify(vague));
  const risks = await h.pool.query<{ l2: number; l5: number }>(
    `SELECT (SELECT (f->>'pWrong')::float FROM jsonb_array_elements(q2.details->'risk'->'fields') f WHERE f->>'field' = 'class') AS l2,
            (SELECT (f->>'pWrong')::float FROM jsonb_array_elements(q5.details->'risk'->'fields') f WHERE f->>'field' = 'class') AS l5
     FROM samples s JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2 JOIN qc_results q5 ON q5.sample_id = s.id AND q5.layer = 5
     WHERE s.project_id = $1 AND s.external_id = 'vague'`, [project]);
  assert.ok(Math.abs(risks.rows[0]!.l2 - risks.rows[0]!.l5) < 1e-6, JSON.stringify(risks.rows[0]));
});

test('the pinned version is used even after a newer one is registered; the session cache hits on the second batch', async () => {
  const name = `bow-${uid()}`;
  const v1 = bagOfWordsTextModel({ cues: CUES });
  await registerModel(h.pool, h.store, { name, version: '1', onnx: v1.onnx, manifest: v1.manifest, tokenizer: v1.tokenizer }, 'test');
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { layer3: { models: [name] } } });
  const pinned = await resolveModelRefs(h.pool, [name]);
  // v2 swaps the cues of cat and dog: a batch that switched model mid-flight would score "right" low.
  const v2 = bagOfWordsTextModel({ cues: { cat: CUES.dog, dog: CUES.cat, bird: CUES.bird } });
  await registerModel(h.pool, h.store, { name, version: '2', onnx: v2.onnx, manifest: v2.manifest, tokenizer: v2.tokenizer }, 'test');

  const stage = async (batchId: string, lines: string[]): Promise<string> => {
    const key = `staging/${project}/${batchId}.jsonl`;
    await putObject(h.store, key, lines.join('\n') + '\n', 'application/x-ndjson');
    return key;
  };
  const run = async (batchId: string, lines: string[]): Promise<BatchProgress> => {
    const handle = await h.client.workflow.start(qcBatch, {
      taskQueue: h.cfg.taskQueues.cpu, workflowId: workflowIds.qcBatch(project, batchId),
      args: [{ project, batchId, stagingKey: await stage(batchId, lines), layer3: { models: pinned, taskQueue: h.cfg.taskQueues.inference } }],
    });
    await handle.result();
    return handle.query(batchProgressQuery);
  };
  const first = await run('b1', [line('a', 'meow meow', 'cat')]);
  const second = await run('b2', [line('b', 'purr kitten', 'cat')]);
  const r = await layer3(project);
  assert.ok(r.get('a')!.score! > 0.99 && r.get('b')!.score! > 0.99);
  assert.equal(r.get('b')!.model, `default/${name}/1`);
  assert.deepEqual(first.inference!.providers, ['cpu']);
  assert.equal(second.inference!.cache.hits - first.inference!.cache.hits, 1, JSON.stringify(second.inference));
  assert.equal(second.inference!.cache.misses, first.inference!.cache.misses);

  // A batch queued through the intake pins the newest version at that moment: v2.
  await ingest(project, [line('c', 'meow', 'cat')]);
  assert.equal((await layer3(project)).get('c')!.model, `default/${name}/2`);
});

test('a corrupted model file and an undecodable image become layer-3 findings that send samples to review; the worker lives on', async () => {
  const name = `cnn-${uid()}`;
  const cnn = tinyColorCnn();
  const v = await registerModel(h.pool, h.store, { name, version: '1', onnx: cnn.onnx, manifest: cnn.manifest }, 'test');
  const project = `t-${uid()}`;
  await upsertProject(h.pool, validateProjectDefinition({
    id: project, jsonSchema: { type: 'object' }, regexRules: [], ontology: { classes: ['red', 'green', 'blue'] },
    qcPolicy: { auditShare: 0, layer3: { models: [name] } },
  }), 'test');
  const png = (r: number, g: number, b: number) => sharp({ create: { width: 24, height: 24, channels: 3, background: { r, g, b } } }).png().toBuffer();
  const sample = (id: string, base64: string, label: string) => JSON.stringify({
    externalId: id, payload: {}, media: [{ contentType: 'image/png', base64 }],
    annotations: [1, 2].map((i) => ({ annotator: `ann-${i}`, labels: { classes: [label] } })),
  });
  await ingest(project, [
    sample('red', (await png(250, 10, 10)).toString('base64'), 'red'),
    sample('blue-called-green', (await png(0, 0, 255)).toString('base64'), 'green'),
    sample('garbage', Buffer.from('not an image').toString('base64'), 'red'),
  ]);
  let r = await layer3(project);
  assert.ok(r.get('red')!.score! > 0.95, JSON.stringify(r.get('red')));
  assert.ok(r.get('blue-called-green')!.score! < 0.05);
  assert.deepEqual(r.get('garbage')!.rules, ['layer3.bad_input']);
  assert.equal(r.get('garbage')!.reason, 'layer3_error');
  assert.equal(r.get('garbage')!.status, 'review');

  // Overwrite the stored model: its sha256 no longer matches the registered one.
  await putObject(h.store, v.objectKey, Buffer.from('definitely not onnx'), 'application/octet-stream');
  await h.inference!.sessions.close();
  await ingest(project, [sample('after-corruption', (await png(250, 10, 10)).toString('base64'), 'red')]);
  r = await layer3(project);
  const broken = r.get('after-corruption')!;
  assert.deepEqual(broken.rules, ['layer3.model_unavailable']);
  assert.equal(broken.reason, 'layer3_error');
  assert.equal(broken.status, 'review');
  const { rows } = await h.pool.query<{ message: string }>(
    `SELECT q3.findings->0->>'message' AS message FROM samples s JOIN qc_results q3 ON q3.sample_id = s.id AND q3.layer = 3 WHERE s.project_id = $1 AND s.external_id = 'after-corruption'`, [project],
  );
  assert.match(rows[0]!.message, /sha256 is [0-9a-f]{64}, registered [0-9a-f]{64}.*re-register/);
  assert.equal(h.inference!.worker.getState(), 'RUNNING');
});

test('a gray release splits a batch per sample through the pinned flag: each sample scored once, by its arm\'s model; ramping moves only later batches', async () => {
  const name = `bow-${uid()}`;
  const m = bagOfWordsTextModel({ cues: CUES });
  const control = await registerModel(h.pool, h.store, { name, version: '1', onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer }, 'test');
  const candidate = await registerModel(h.pool, h.store, { name, version: '2', onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer }, 'test');
  const flag = `layer3.${name}`;
  await saveFlag(h.pool, { key: flag, salt: 's1', defaultVariant: 'control', enabled: true, arms: [{ variant: `${name}@2`, share: 0.5 }, { variant: 'control', share: 0.5 }] }, 'test');
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { layer3: { models: [`${name}@1`], rollout: { flag } } } });
  const lines = Array.from({ length: 40 }, (_, i) => line(`s-${i}`, `the kitten number ${i} says meow`, 'cat'));
  // The inference worker runs in this process: a global OpenFeature hook sees every evaluation it makes.
  const evaluated: Array<{ id: unknown; project: unknown; annotators: unknown; variant: string }> = [];
  OpenFeature.addHooks({ after: (hc, details) => { if (hc.flagKey === flag) evaluated.push({ id: hc.context.targetingKey, project: hc.context.project, annotators: hc.context.annotators, variant: String(details.value) }); } });
  const r = await ingest(project, lines).finally(() => OpenFeature.clearHooks());
  const { rows } = await h.pool.query<{ id: string; model_version: string | null; n: string }>(
    `SELECT s.id, q3.model_version, count(*) OVER (PARTITION BY s.id) AS n FROM samples s JOIN qc_results q3 ON q3.sample_id = s.id AND q3.layer = 3 WHERE s.project_id = $1`, [project],
  );
  assert.equal(rows.length, 40, 'every sample scored');
  assert.ok(rows.every((x) => x.n === '1'), 'once');
  for (const x of rows) {
    const arm = bucketOf(flag, 's1', x.id) < 0.5 ? candidate.id : control.id;
    assert.equal(x.model_version, arm, `${x.id} scored by its arm`);
  }
  // Layer 3 asked OpenFeature, with project, sample id and annotators: each arm's call asks about the
  // samples still unscored when it reads them, so every sample once or twice, always with its arm.
  for (const x of rows) {
    const seen = evaluated.filter((e) => e.id === x.id);
    assert.ok(seen.length === 1 || seen.length === 2, `${x.id} evaluated ${seen.length} times`);
    assert.ok(seen.every((e) => e.project === project && JSON.stringify(e.annotators) === '["ann-1","ann-2"]'), JSON.stringify(seen));
    assert.ok(seen.every((e) => (e.variant === 'control' ? control.id : candidate.id) === x.model_version), `${x.id}: OpenFeature's variant is the arm that scored it`);
  }
  const byArm = rows.filter((x) => x.model_version === candidate.id).length;
  assert.ok(byArm > 5 && byArm < 35, `${byArm} of 40 went to the candidate`);
  const progress = await h.client.workflow.getHandle(workflowIds.qcBatch(project, r.batches[0]!.batchId)).query(batchProgressQuery);
  assert.deepEqual(Object.keys(progress.inference!.arms!).sort(), [`${name}@2`, 'control'].sort());
  assert.equal(progress.inference!.arms![`${name}@2`]!.scored, byArm);
  assert.equal(progress.inference!.scored, 40);
  // Per-arm outcomes for the rollout verdict.
  const status = await rolloutStatus(h.pool, project, flag);
  assert.deepEqual(status.arms.map((a) => [a.variant, a.n]).sort(), [[`${name}@2`, byArm], ['control', 40 - byArm]].sort());
  assert.ok(status.arms.every((a) => a.reviewed === 0 && a.overturned === 0), 'nothing reviewed yet');
  assert.ok(status.arms.every((a) => a.latencyP95Ms !== null && a.latencyP95Ms > 0 && a.latencyP95Ms < 1000), `per-arm model time p95: ${JSON.stringify(status.arms)}`);
  // Reviewer decisions on three of the candidate's samples (all of which it passed): a correction and a
  // rejection contradict its verdict, an approval upholds it; a resample says nothing; an open task is not a decision.
  const candidateSamples = rows.filter((x) => x.model_version === candidate.id).map((x) => x.id);
  for (const [i, [status, decision]] of ([['decided', 'correct'], ['decided', 'reject'], ['decided', 'approve'], ['decided', 'resample'], ['open', null]] as const).entries()) {
    await h.pool.query(
      `INSERT INTO review_tasks (sample_id, project_id, round, reason, audience, task_token, status, decision, due_at) VALUES ($1, $2, 1, 'audit', 'reviewers', '\\x00', $3, $4, now())`,
      [candidateSamples[i], project, status, decision],
    );
  }
  const reviewed = (await rolloutStatus(h.pool, project, flag)).arms.find((a) => a.variant === `${name}@2`)!;
  assert.deepEqual([reviewed.reviewed, reviewed.overturned], [3, 2]);
  // Switched off: the next batch is the control's alone.
  await saveFlag(h.pool, { key: flag, salt: 's1', defaultVariant: 'control', enabled: false, arms: [{ variant: `${name}@2`, share: 0.5 }, { variant: 'control', share: 0.5 }] }, 'test');
  await ingest(project, [line('later', 'a puppy says woof', 'dog')]);
  assert.equal(r.counts.staged, 40);
  const later = await layer3(project);
  assert.equal(later.get('later')!.model, control.id);
});

test('modelRollout end to end: the candidate goes to canary, takes half the samples, equals the control on them, and is promoted to production', async () => {
  const name = `bow-${uid()}`;
  const m = bagOfWordsTextModel({ cues: CUES });
  await registerModel(h.pool, h.store, { name, version: '1', onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer }, 'test');
  const candidate = await registerModel(h.pool, h.store, { name, version: '2', onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer }, 'test');
  await moveStage(h.pool, candidate.id, 'validated', 'test', 'golden outputs match');
  const flag = `layer3.${name}`;
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { layer3: { models: [`${name}@1`], rollout: { flag } } } });
  const handle = await h.client.workflow.start(modelRollout, {
    workflowId: workflowIds.rollout(candidate.id), taskQueue: h.cfg.taskQueues.cpu,
    args: [{ project, flag, candidate: candidate.id, steps: [0.5, 1], minPerArm: 10, margin: 0.2, checkSeconds: 1 }],
  });
  await waitUntil('the rollout set its flag', async () => (await loadFlags(h.pool, [flag])).length === 1);
  assert.equal((await getModelVersion(h.pool, candidate.id))!.stage, 'canary');
  // Which arm a sample lands in hashes its id, and ids carry the random project name: one run in a hundred
  // splits 60 samples 20/40, leaving the interval just wider than the margin, and the rollout (rightly)
  // waits for more. So more come, 60 at a time, until it decides — at most four rounds, not forever.
  const decided = handle.result();
  for (let round = 0; round < 4; round++) {
    await ingest(project, Array.from({ length: 60 }, (_, i) => line(`r-${round}-${i}`, `the kitten number ${i} of round ${round} says meow`, 'cat')));
    const done = await Promise.race([decided.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5000))]);
    if (done) break;
  }
  const result = await Promise.race([decided, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the rollout did not decide after 240 samples')), 30_000))]);
  assert.equal(result.status, 'promoted', JSON.stringify(result.log));
  assert.ok(result.last!.arms.every((a) => a.n >= 10), JSON.stringify(result.last));
  assert.equal((await getModelVersion(h.pool, candidate.id))!.stage, 'production');
  assert.equal((await aliasesOf(h.pool, 'default', name)).production, candidate.id);
  const f = (await loadFlags(h.pool, [flag]))[0]!;
  assert.equal(f.arms.find((a) => a.variant !== 'control')!.share, 1, 'every later sample goes to the candidate');
});

test('modelRollout moves one tenant\'s models only: a candidate of another tenant than the project\'s control is refused before it enters canary', async () => {
  const name = `bow-${uid()}`;
  const m = bagOfWordsTextModel({ cues: CUES });
  await registerModel(h.pool, h.store, { name, version: '1', onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer }, 'test');
  const foreign = await registerModel(h.pool, h.store, { tenant: `acme${uid()}`, name, version: '2', onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer }, 'test');
  await moveStage(h.pool, foreign.id, 'validated', 'test', 'golden outputs match');
  const flag = `layer3.${name}`;
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { layer3: { models: [`${name}@1`], rollout: { flag } } } });
  const handle = await h.client.workflow.start(modelRollout, {
    workflowId: workflowIds.rollout(foreign.id), taskQueue: h.cfg.taskQueues.cpu, args: [{ project, flag, candidate: foreign.id, checkSeconds: 1 }],
  });
  await assert.rejects(handle.result(), (e: Error) => new RegExp(`control default/${name}/1 is not in tenant ${foreign.tenant}`).test(String(((e.cause as Error | undefined)?.cause as Error | undefined)?.message)));
  assert.equal((await getModelVersion(h.pool, foreign.id))!.stage, 'validated', 'it never entered canary');
  assert.equal((await loadFlags(h.pool, [flag])).length, 0, 'and no flag was set');
});
