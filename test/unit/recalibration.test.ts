import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConsistency, type AnnotatorLabels } from '../../src/qc/consistency';
import { planBatchRisks, riskFindings } from '../../src/qc/disposition';
import { DEFAULT_POLICY, resolvePolicy } from '../../src/qc/policy';
import { fitRecalibration, IDENTITY, recalibrate, solveLinear, type ReviewedEstimate } from '../../src/qc/stats/recalibration';
import { prng } from '../../src/util/prng';

const logit = (p: number): number => Math.log(p / (1 - p));
const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

test('no reviews: the estimate stands as it is', () => {
  assert.deepEqual(fitRecalibration([]), IDENTITY);
  for (const p of [1e-6, 0.003, 0.4]) assert.equal(recalibrate(p, true, IDENTITY), p);
});

test('the linear solve: a 3 × 3 system with a zero first pivot, and a singular one', () => {
  assert.deepEqual(solveLinear([[0, 1, 0], [2, 0, 0], [0, 0, 4]], [3, 4, 8])!.map((x) => +x.toFixed(12)), [2, 3, 2]);
  assert.equal(solveLinear([[1, 2], [2, 4]], [1, 2]), undefined);
});

test('thousands of reviews recover how wrong the estimates really are, separately for contested samples', () => {
  // Overconfident models, as on real crowds: uncontested errors at σ(1 + 0.6·logit p), contested at σ(0.6 + 0.3·logit p).
  const r = prng(11);
  const truth = { uncontested: { a: 1, b: 0.6 }, contested: { a: 0.6, b: 0.3 } };
  const rows: ReviewedEstimate[] = Array.from({ length: 6000 }, () => {
    const p = Math.exp(Math.log(1e-5) + r() * (Math.log(0.3) - Math.log(1e-5)));
    const contested = r() < 0.5;
    const line = contested ? truth.contested : truth.uncontested;
    return { p, contested, wrong: r() < sigmoid(line.a + line.b * logit(p)) };
  });
  const fit = fitRecalibration(rows);
  assert.equal(fit.reviews, 6000);
  for (const k of ['uncontested', 'contested'] as const) {
    assert.ok(Math.abs(fit[k].a - truth[k].a) < 0.35 && Math.abs(fit[k].b - truth[k].b) < 0.07, `${k}: ${JSON.stringify(fit[k])}`);
  }
  // What it is for: a 2–1 split the models call 0.3% wrong is in fact wrong about one time in eight.
  assert.ok(recalibrate(0.003, true, fit) > 0.1, String(recalibrate(0.003, true, fit)));
});

test('a handful of reviews moves the estimate a little, not all the way, and in the direction they point', () => {
  const ten = (wrong: boolean) => fitRecalibration(Array.from({ length: 10 }, (): ReviewedEstimate => ({ p: 0.01, contested: true, wrong })));
  const approved = recalibrate(0.01, true, ten(false));
  const corrected = recalibrate(0.01, true, ten(true));
  // Ten reviews say little: the fit stays within a few times the models' 1% (leaning towards wrong while it knows little) …
  assert.ok(approved > 0.002 && approved < 0.05, String(approved));
  assert.ok(corrected > 0.1, String(corrected));
  // … and the uncontested line, which saw none of them, stays where it was.
  assert.ok(Math.abs(ten(false).uncontested.a) < 1e-9 && Math.abs(ten(false).uncontested.b - 1) < 1e-9, JSON.stringify(ten(false).uncontested));
});

test('layer 2 says whether a sample is contested; the batch plan recalibrates it and keeps the models\' estimate beside', () => {
  const ontology = { classes: ['cat', 'dog', 'fox'] };
  const ann = (annotator: string, cls: string): AnnotatorLabels => ({ annotator, labels: { classes: [cls] } });
  const check = (anns: AnnotatorLabels[]) => checkConsistency({ annotations: anns, payload: {}, ontology, policy: DEFAULT_POLICY.layer2, weights: { a: 0.97, b: 0.97, c: 0.97 } });
  const unanimous = check([ann('a', 'cat'), ann('b', 'cat'), ann('c', 'cat')]).risk;
  const split = check([ann('a', 'cat'), ann('b', 'cat'), ann('c', 'dog')]).risk;
  assert.deepEqual([unanimous.contested, split.contested], [false, true]);
  assert.ok(split.primary < 0.02, String(split.primary));
  const policy = resolvePolicy({ auditShare: 0 });
  const rows = [
    ...Array.from({ length: 50 }, (_, i) => ({ id: `u${i}`, risk: unanimous, modelP: null, eligible: true })),
    { id: 's', risk: split, modelP: null, eligible: true },
  ];
  // Under the models alone the split is accepted with the rest.
  const before = planBatchRisks(rows, policy, 3, IDENTITY);
  assert.ok(before.risks.get('s')!.primary <= before.threshold.primary);
  // Reviews found contested samples wrong one time in eight: now it goes to a person, and says why.
  const recal = { uncontested: { a: 0, b: 1, cov: [0, 0, 0] as [number, number, number] }, contested: { a: logit(0.125) - logit(split.primary), b: 1, cov: [0, 0, 0] as [number, number, number] }, reviews: 400, overturned: 50 };
  const after = planBatchRisks(rows, policy, 3, recal);
  const s = after.risks.get('s')!;
  assert.ok(Math.abs(s.primary - 0.125) < 1e-9 && s.raw?.primary === split.primary, JSON.stringify(s.raw));
  assert.ok(s.primary > after.threshold.primary);
  assert.ok(Math.abs(after.risks.get('u0')!.primary - unanimous.primary) < 1e-12);
  const why = riskFindings('uncertain', s, after.threshold, policy, []).map((f) => f.message).join('\n');
  assert.match(why, /probability the labels are wrong 0\.1250 \(0\.0\d+ by the annotator models, recalibrated against decided reviews\)/);
});
