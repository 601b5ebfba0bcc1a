import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decideDisposition, fuseConfidence, inAuditShare, layer5Findings } from '../../src/qc/disposition';
import { DEFAULT_POLICY, resolvePolicy } from '../../src/qc/policy';
import { configurePlugins, runPlugins, type QcPlugin } from '../../src/qc/plugins/registry';
import { laplacianVariance } from '../../src/qc/plugins/image-quality';
import { prng } from '../../src/demo/dataset';

const W = DEFAULT_POLICY.fusion.weights;

test('fusion: default weights 0.6 / −0.25 / +0.15, clamped to [0, 1], every input and weight kept', () => {
  const f = fuseConfidence({ score: 0.9, uncertainty: 0.2, stability: 0.8, agreement: 1 }, W);
  assert.equal(f.final.toFixed(4), (0.6 * 0.9 - 0.25 * 0.2 + 0.15 * 0.8).toFixed(4));
  assert.deepEqual(f.inputs, { score: 0.9, uncertainty: 0.2, stability: 0.8 });
  assert.deepEqual(f.weights, { score: 0.6, uncertainty: -0.25, stability: 0.15 });
  assert.deepEqual(f.absent, []);
  assert.equal(fuseConfidence({ score: 0, uncertainty: 1, stability: 0, agreement: 1 }, W).final, 0);
  assert.equal(fuseConfidence({ score: 1, uncertainty: 0, stability: 1, agreement: 1 }, { score: 1, uncertainty: 0, stability: 1 }).final, 1);
});

test('fusion: absent layer-3/4 inputs take neutral stand-ins and are named', () => {
  const f = fuseConfidence({ agreement: 0.5 }, W);
  assert.deepEqual(f.inputs, { score: 0.5, uncertainty: 0, stability: 1 });
  assert.deepEqual(f.absent.map((a) => a.input), ['score', 'uncertainty', 'stability']);
  assert.match(f.absent[0]!.usedInstead, /layer-2 agreement 0.500/);
  assert.equal(f.final.toFixed(4), (0.6 * 0.5 + 0.15).toFixed(4));
  // NaN from a broken model counts as absent, not as a number.
  assert.deepEqual(fuseConfidence({ score: Number.NaN, agreement: 1 }, W).inputs.score, 1);
});

test('disposition table: the rules apply in order', () => {
  const policy = { ...DEFAULT_POLICY, auditShare: 0 };
  const d = (layer1Passed: boolean, layer2Passed: boolean | undefined, final: number) =>
    decideDisposition({ sampleId: 'x', layer1Passed, layer2Passed, final, policy });
  const table: Array<[boolean, boolean | undefined, number, string, string]> = [
    [false, undefined, 1, 'rejected', 'layer1_failed'],
    [false, false, 1, 'rejected', 'layer1_failed'],
    [true, false, 1, 'review', 'layer2_conflict'],
    [true, true, 0.6, 'accepted', 'confident'],
    [true, true, 0.59, 'review', 'uncertain'],
    [true, true, 0.4, 'review', 'uncertain'],
    [true, true, 0.39, 'resample', 'low_confidence'],
  ];
  for (const [l1, l2, final, disposition, reason] of table) assert.deepEqual(d(l1, l2, final), { disposition, reason }, `${l1} ${l2} ${final}`);
});

test('layer-5 findings say which rule decided and which inputs were stand-ins', () => {
  const fusion = fuseConfidence({ score: 0.3, agreement: 1 }, W);
  const f = layer5Findings('low_confidence', fusion, DEFAULT_POLICY, []);
  assert.deepEqual(f.map((x) => `${x.pointer} ${x.rule}`), [' disposition.low_confidence', '/fusion/uncertainty fusion.input_absent', '/fusion/stability fusion.input_absent']);
  assert.match(f[0]!.message, /resample: confidence 0.330 is below review 0.4/);
  assert.match(layer5Findings('layer2_conflict', undefined, DEFAULT_POLICY, ['class_conflict'])[0]!.message, /annotators conflict \(class_conflict\)/);
  assert.deepEqual(layer5Findings('confident', fuseConfidence({ score: 1, uncertainty: 0, stability: 1, agreement: 1 }, W), DEFAULT_POLICY, []), []);
});

test('audit share: deterministic by sample id and close to the configured fraction', () => {
  const ids = Array.from({ length: 20000 }, (_, i) => `sample-${i}`);
  const picked = ids.filter((id) => inAuditShare(id, 0.02));
  assert.ok(Math.abs(picked.length / ids.length - 0.02) < 0.004, `${picked.length}`);
  assert.deepEqual(ids.filter((id) => inAuditShare(id, 0.02)), picked);
  assert.equal(ids.some((id) => inAuditShare(id, 0)), false);
  const policy = { ...DEFAULT_POLICY, auditShare: 0.02 };
  assert.deepEqual(decideDisposition({ sampleId: picked[0]!, layer1Passed: true, layer2Passed: true, final: 0.99, policy }), { disposition: 'review', reason: 'audit' });
});

test('image-quality plugin: blur by Laplacian variance, exposure by histogram, undecodable bytes are a finding', async () => {
  const rnd = prng(5);
  const noise = Buffer.from(Array.from({ length: 128 * 128 }, () => 40 + Math.floor(rnd() * 176)));
  const sharpPng = await sharp(noise, { raw: { width: 128, height: 128, channels: 1 } }).png().toBuffer();
  const blurredPng = await sharp(noise, { raw: { width: 128, height: 128, channels: 1 } }).blur(4).png().toBuffer();
  const darkPng = await sharp(Buffer.alloc(64 * 64, 3), { raw: { width: 64, height: 64, channels: 1 } }).png().toBuffer();
  const brightPng = await sharp(Buffer.alloc(64 * 64, 252), { raw: { width: 64, height: 64, channels: 1 } }).png().toBuffer();
  const configured = configurePlugins(resolvePolicy({ plugins: [{ id: 'image-quality' }] }));
  const sample = (id: string, bytes: Buffer) => ({ sampleId: id, payload: {}, annotations: [], media: [{ key: `raw/${id}.png`, bytes }] });
  const out = await runPlugins(configured, [sample('sharp', sharpPng), sample('blurred', blurredPng), sample('dark', darkPng), sample('bright', brightPng), sample('junk', Buffer.from('not an image'))],
    { project: 'p', ontology: {}, weights: {} });
  const rulesOf = (id: string) => (out.findings.get(id) ?? []).map((f) => f.rule).sort();
  assert.deepEqual(rulesOf('sharp'), []);
  assert.deepEqual(rulesOf('blurred'), ['image.blur']);
  assert.deepEqual(rulesOf('dark'), ['image.blur', 'image.underexposed']);
  assert.deepEqual(rulesOf('bright'), ['image.blur', 'image.overexposed']);
  assert.deepEqual(rulesOf('junk'), ['image.undecodable']);
  assert.equal(out.findings.get('blurred')![0]!.plugin, 'image-quality');
  assert.ok(out.scores.get('sharp')!['image-quality'] === 1 && out.scores.get('blurred')!['image-quality']! < 1);
  // A flat image has no edges at all.
  assert.equal(laplacianVariance(Buffer.alloc(25, 7), 5, 5), 0);
});

test('a plugin that throws is recorded for the batch and the other plugins still run', async () => {
  const broken: QcPlugin<unknown> = { id: 'broken', description: 'always throws', layer: 2, parseConfig: (c) => c, run: () => { throw new Error('boom'); } };
  const seq = configurePlugins(resolvePolicy({ plugins: [{ id: 'sequence-labels' }] }));
  const out = await runPlugins([{ plugin: broken, config: {} }, ...seq],
    [
      { sampleId: 's', payload: {}, media: [], annotations: [{ annotator: 'a', labels: { tags: ['O', 'I-PER'] } }] },
      { sampleId: 'ok', payload: {}, media: [], annotations: [{ annotator: 'a', labels: { tags: ['B-PER', 'I-PER', 'O'] } }, { annotator: 'b', labels: { tags: ['B-PER', 'I-PER', 'O'] } }] },
      { sampleId: 'untagged', payload: {}, media: [], annotations: [{ annotator: 'a', labels: { classes: ['x'] } }] },
    ], { project: 'p', ontology: {}, weights: {} });
  assert.deepEqual(out.errors, [{ plugin: 'broken', message: 'boom' }]);
  assert.deepEqual(out.findings.get('s')!.map((f) => [f.plugin, f.rule]), [['sequence-labels', 'invalid_transition']]);
  // The decoded path joins layer 2's consensus; samples without tags are not the plugin's business.
  assert.deepEqual(out.consensus.get('ok'), { tags: ['B-PER', 'I-PER', 'O'] });
  assert.deepEqual(out.tallies.get('ok'), { 'sequence-labels': { a: { compared: 3, agreed: 3 }, b: { compared: 3, agreed: 3 } } });
  assert.equal(out.findings.has('untagged'), false);
  // An invalid sequence is the annotator's violation: a person settles it.
  assert.deepEqual(out.blocking.get('s'), ['invalid_transition']);
});

test("tags by risk: a reliable crowd's dissent on one entity is weighed, not sent to a person; a split entity is doubtful", async () => {
  const seq = configurePlugins(resolvePolicy({ plugins: [{ id: 'sequence-labels' }] }));
  const tags = (a: string, t: string[]) => ({ annotator: a, labels: { tags: t } });
  const out = await runPlugins(seq, [
    { sampleId: 'one-off', payload: {}, media: [], annotations: [tags('a', ['B-PER', 'I-PER', 'O', 'O']), tags('b', ['B-PER', 'I-PER', 'O', 'O']), tags('c', ['O', 'O', 'O', 'O'])] },
    { sampleId: 'split', payload: {}, media: [], annotations: [tags('a', ['B-PER', 'I-PER', 'O', 'O']), tags('b', ['B-LOC', 'I-LOC', 'O', 'O']), tags('c', ['O', 'O', 'O', 'O'])] },
  ], { project: 'p', ontology: { entities: ['PER', 'LOC'] }, weights: { a: 0.95, b: 0.95, c: 0.95 } });
  assert.deepEqual(out.findings.get('one-off')!.map((f) => f.rule), ['tag_conflict', 'tag_conflict'], 'the dissent is recorded');
  assert.equal(out.blocking.has('one-off'), false, 'but a vote settles it');
  const oneOff = out.risks.get('one-off')!;
  // The entity's two tokens split alike: one field, not two; the unanimous O run is another.
  assert.deepEqual(oneOff.map((r) => r.field), ['tags:0-1', 'tags:2-3']);
  // 2–1 among 95% annotators over K = 5 tags: .0125²·.95 / (.95²·.0125) ≈ 1/76, plus the unseen tags.
  assert.ok(oneOff[0]!.pWrong > 0.012 && oneOff[0]!.pWrong < 0.015, `2–1 on an entity ${oneOff[0]!.pWrong}`);
  assert.ok(oneOff[1]!.pWrong < 1e-4);
  assert.match(oneOff[0]!.why, /c: "O O"/);
  const split = out.risks.get('split')!;
  assert.ok(split[0]!.pWrong > 0.4, `three readings of one entity ${split[0]!.pWrong}`);
});
