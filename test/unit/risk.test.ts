import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConsistency, type AnnotatorLabels } from '../../src/qc/consistency';
import { combineRisks, geometryRisk, labelRisk, votePosterior, withModel } from '../../src/qc/risk';
import { acceptanceThreshold, alertsThatMatter, batchThresholds, decideByRisk, overReviewBudget, primaryRisk, riskFindings } from '../../src/qc/disposition';
import { DEFAULT_POLICY, resolvePolicy } from '../../src/qc/policy';
import type { Labels } from '../../src/ingest/envelope';
import type { Ontology } from '../../src/projects/ontology';

const ontology: Ontology = { classes: ['cat', 'dog', 'fox'], attributes: { pose: ['standing', 'sitting', 'lying'] } };
const ann = (annotator: string, labels: Labels): AnnotatorLabels => ({ annotator, labels });
const check = (anns: AnnotatorLabels[], weights: Record<string, number> = {}) =>
  checkConsistency({ annotations: anns, payload: {}, ontology, policy: DEFAULT_POLICY.layer2, weights });
const box = (x: number, y: number, cls = 'cat', attributes?: Record<string, string>) => ({ x, y, w: 40, h: 40, class: cls, ...(attributes ? { attributes } : {}) });
const field = (r: { risk: { fields: Array<{ field: string; pWrong: number }> } }, name: string): number => r.risk.fields.find((f) => f.field === name)!.pWrong;

test('one-coin vote posterior: worked example, unanimity, unseen values and bounded accuracies', () => {
  // 0.9, 0.9 for A against 0.9 for B among K = 3: A ∝ .9·.9·.05, B ∝ .05·.05·.9, C ∝ .05³.
  const v = votePosterior([{ annotator: 'a', value: 'A' }, { annotator: 'b', value: 'A' }, { annotator: 'c', value: 'B' }], { a: 0.9, b: 0.9, c: 0.9 }, 3);
  const a = 0.9 * 0.9 * 0.05;
  const b = 0.05 * 0.05 * 0.9;
  const c = 0.05 ** 3;
  assert.equal(v.value, 'A');
  assert.ok(Math.abs(v.pWrong - (1 - a / (a + b + c))) < 1e-12);
  // Three reliable annotators agreeing leave almost nothing to doubt; one alone does.
  assert.ok(votePosterior(['a', 'b', 'c'].map((x) => ({ annotator: x, value: 'A' })), { a: 0.95, b: 0.95, c: 0.95 }, 3).pWrong < 1e-3);
  assert.ok(Math.abs(votePosterior([{ annotator: 'a', value: 'A' }], { a: 0.8 }, 5).pWrong - 0.2) < 1e-12);
  // An annotator recorded below chance is taken as uninformative, not as pointing at the other values.
  const adversarial = votePosterior([{ annotator: 'x', value: 'A' }, { annotator: 'a', value: 'B' }], { x: 0.05, a: 0.9 }, 2);
  assert.equal(adversarial.value, 'B');
});

test('geometry risk is continuous: pixel jitter costs nearly nothing, barely-overlapping shapes are doubtful', () => {
  assert.ok(geometryRisk(0.9) < 1e-4);
  assert.ok(geometryRisk(0.65) < 0.005);
  assert.ok(Math.abs(geometryRisk(0.35) - 0.5) < 1e-12);
  assert.ok(geometryRisk(0.2) > 0.9);
  assert.ok(geometryRisk(0.7) < geometryRisk(0.6));
  const both = combineRisks([{ field: 'class', pWrong: 0.1, why: '' }, { field: 'boxes:0:attribute:pose', pWrong: 0.2, why: '' }]);
  assert.equal(both.pWrong, 1 - 0.9 * 0.8);
  assert.equal(both.primary.toFixed(12), (0.1).toFixed(12));
  assert.equal(both.attributes.toFixed(12), (0.2).toFixed(12));
});

test('soft per-field consensus: a secondary-attribute split and box jitter stay low-risk; a 2–1 class split does not', () => {
  const jitter = check([
    ann('a', { classes: ['cat'], boxes: [box(100, 100, 'cat', { pose: 'sitting' })] }),
    ann('b', { classes: ['cat'], boxes: [box(104, 98, 'cat', { pose: 'sitting' })] }),
    ann('c', { classes: ['cat'], boxes: [box(97, 103, 'cat', { pose: 'lying' })] }),
  ], { a: 0.97, b: 0.97, c: 0.97 });
  assert.ok(jitter.findings.some((f) => f.rule === 'attribute_conflict'), 'the dissent is still recorded');
  assert.equal(jitter.consensus.boxes![0]!.attributes!.pose, 'sitting');
  // 2–1 among 97%-accurate annotators, K = 3: .015²·.97 / (.97²·.015) ≈ 1.5% — a doubt, not a conflict.
  assert.ok(field(jitter, 'boxes:0:attribute:pose') < 0.02, `pose ${field(jitter, 'boxes:0:attribute:pose')}`);
  assert.ok(field(jitter, 'boxes:0:geometry') < 0.01);
  assert.ok(jitter.risk.pWrong < 0.03, `sample ${jitter.risk.pWrong}`);
  assert.deepEqual(jitter.blocking, []);

  const split = check([ann('a', { classes: ['cat'] }), ann('b', { classes: ['cat'] }), ann('c', { classes: ['dog'] })], { a: 0.9, b: 0.9, c: 0.9 });
  assert.ok(split.risk.pWrong > 0.02 && split.risk.pWrong < 0.2, `2–1 split ${split.risk.pWrong}`);
  assert.ok(split.risk.pWrong > jitter.risk.pWrong * 3);
  const three = check([ann('a', { classes: ['cat'] }), ann('b', { classes: ['dog'] }), ann('c', { classes: ['fox'] })]);
  assert.ok(three.risk.classPosterior! < 0.5, 'a three-way split leaves no class likely');
});

test('a displaced box is not a missing object: it is reported as displaced and does not vote against the object', () => {
  const displaced = check([
    ann('a', { boxes: [box(100, 100)] }),
    ann('b', { boxes: [box(102, 101)] }),
    ann('c', { boxes: [box(135, 100)] }), // IoU with the others ≈ 0.07: unmatched, but drawn next to it
  ]);
  assert.deepEqual(displaced.findings.map((f) => f.rule).sort(), ['displaced_object']);
  assert.match(displaced.findings[0]!.message, /box "cat" by c is off the one a, b drew/);
  assert.equal(displaced.consensus.boxes!.length, 1, 'the displaced drawing is not a second object');
  assert.ok(field(displaced, 'boxes:0:exists') < 0.01);

  const missing = check([ann('a', { boxes: [box(100, 100)] }), ann('b', { boxes: [box(102, 101)] }), ann('c', { boxes: [] })]);
  assert.deepEqual(missing.findings.map((f) => f.rule), ['missing_object']);
  assert.ok(field(missing, 'boxes:0:exists') > field(displaced, 'boxes:0:exists'), 'drawing nothing is evidence against the object');

  // A box only one of three reliable annotators drew probably is not there: it leaves the consensus.
  const stray = check([ann('a', { boxes: [box(100, 100), box(300, 300, 'dog')] }), ann('b', { boxes: [box(101, 100)] }), ann('c', { boxes: [box(99, 101)] })], { a: 0.95, b: 0.95, c: 0.95 });
  assert.equal(stray.consensus.boxes!.length, 1);
  // One 95% annotator against two: .95·.05² / (.95·.05² + .05·.95²) = 5% that it was there after all.
  assert.ok(stray.risk.fields.some((f) => f.field.startsWith('boxes:dropped:') && Math.abs(f.pWrong - 0.05) < 1e-9));
});

test('boxes nobody matched but all drawn near one another are one object in doubt, not three that silently drop', () => {
  // Two of three drawn off target, to either side: no pair overlaps enough to match, no pair of two to be displaced from.
  const scattered = check([ann('a', { boxes: [box(100, 100)] }), ann('b', { boxes: [box(140, 100)] }), ann('c', { boxes: [box(62, 100)] })], { a: 0.95, b: 0.95, c: 0.95 });
  assert.equal(scattered.consensus.boxes!.length, 1);
  assert.ok(!scattered.risk.fields.some((f) => f.field.startsWith('boxes:dropped:')), 'nobody voted it away');
  assert.ok(field(scattered, 'boxes:0:exists') < 0.01);
  assert.ok(field(scattered, 'boxes:0:geometry') > 0.9, 'where it is, the annotators do not say');
  assert.ok(scattered.findings.some((f) => f.rule === 'geometry_conflict'));
  // Far apart, they are still separate drawings (each of one annotator only).
  const apart = check([ann('a', { boxes: [box(100, 100)] }), ann('b', { boxes: [box(400, 300)] }), ann('c', { boxes: [] })], { a: 0.95, b: 0.95, c: 0.95 });
  assert.equal(apart.consensus.boxes!.length, 0);
  assert.equal(apart.risk.fields.filter((f) => f.field.startsWith('boxes:dropped:')).length, 2);
});

test("a box's class given by each annotator as the image's class is one question: its risk counts once", () => {
  const anns = [
    ann('a', { classes: ['cat'], boxes: [box(100, 100, 'cat')] }),
    ann('b', { classes: ['cat'], boxes: [box(101, 100, 'cat')] }),
    ann('c', { classes: ['dog'], boxes: [box(100, 101, 'dog')] }),
  ];
  const r = check(anns, { a: 0.9, b: 0.9, c: 0.9 });
  const boxClass = r.risk.fields.find((f) => f.field === 'boxes:0:class')!;
  assert.equal(boxClass.sameAs, 'class');
  assert.ok(Math.abs(r.risk.primary - (1 - (1 - field(r, 'class')) * (1 - field(r, 'boxes:0:exists')) * (1 - field(r, 'boxes:0:geometry')))) < 1e-12, 'the box class is not multiplied in again');
  // A box class that differs from its annotator's image class is a question of its own.
  const own = check([anns[0]!, anns[1]!, ann('c', { classes: ['cat'], boxes: [box(100, 101, 'dog')] })], { a: 0.9, b: 0.9, c: 0.9 });
  assert.equal(own.risk.fields.find((f) => f.field === 'boxes:0:class')!.sameAs, undefined);
  // With a confusion model, box classes are judged by it like the image class: a known swapper's dissent weighs little.
  const swapper = (votes: Array<{ annotator: string; value: string }>) => ({ classes: ['cat', 'dog', 'fox'], p: votes.some((v) => v.annotator === 'c') ? [0.999, 0.0009, 0.0001] : [0.9, 0.05, 0.05] });
  const modelled = checkConsistency({ annotations: anns.map((a) => ({ ...a, labels: { boxes: a.labels.boxes! } })), payload: {}, ontology, policy: DEFAULT_POLICY.layer2, weights: { a: 0.9, b: 0.9, c: 0.9 }, classModel: swapper });
  assert.ok(Math.abs(field(modelled, 'boxes:0:class') - 0.001) < 1e-9);
  assert.match(modelled.risk.fields.find((f) => f.field === 'boxes:0:class')!.why, /Dawid–Skene/);
});

test('ontology violations block auto-acceptance whatever the risk; disagreement does not', () => {
  assert.deepEqual(check([ann('a', { classes: ['cat', 'dog'] }), ann('b', { classes: ['cat'] })]).blocking, ['multiple_classes']);
  assert.deepEqual(check([ann('a', { classes: ['wolf'] }), ann('b', { classes: ['cat'] })]).blocking, ['unknown_class']);
  assert.deepEqual(check([ann('a', { attributes: { pose: 'flying' } }), ann('b', { attributes: { pose: 'lying' } })]).blocking, ['attribute_value']);
  assert.deepEqual(check([ann('a', { classes: ['cat'] }), ann('b', { classes: ['dog'] })]).blocking, []);
});

test('the model is one more voter: agreement lowers the class risk, a confident contradiction raises it', () => {
  const base = check([ann('a', { classes: ['cat'] }), ann('b', { classes: ['cat'] }), ann('c', { classes: ['dog'] })], { a: 0.9, b: 0.9, c: 0.9 }).risk;
  assert.ok(withModel(base, 0.95, 3).pWrong < base.pWrong / 5);
  assert.ok(withModel(base, 0.01, 3).pWrong > 0.5);
  assert.equal(withModel(base, 0.95, 3, 0).pWrong.toFixed(12), base.pWrong.toFixed(12), 'weight 0 ignores the model');
  assert.equal(withModel(base, 0.01, 3).classPosterior, base.classPosterior, "the labels' own evidence is unchanged: a contradiction goes to a person, not to resampling");
});

test('the batch threshold keeps the expected error of accepted samples under target; decisions follow it', () => {
  // 90 near-certain samples and 10 at 5%: accept all 90 and as many 5% ones as the 0.5% target allows.
  const risks = [...Array(90).fill(0.0005), ...Array(10).fill(0.05)];
  const tau = acceptanceThreshold(risks, 0.005, 0.05);
  assert.equal(tau, 0.05);
  const accepted = risks.filter((r) => r <= tau);
  // With all ten the mean would be 0.00545 > 0.005, so the prefix stops: τ is 0.05 but the count is bounded by mean.
  const prefix = [...risks].sort((a, b) => a - b);
  let n = 0;
  let sum = 0;
  for (const r of prefix) { if ((sum + r) / (n + 1) > 0.005) break; sum += r; n++; }
  assert.equal(n, 99);
  assert.ok(accepted.length >= n);
  assert.equal(acceptanceThreshold([0.2, 0.3], 0.005, 0.05), -1, 'nothing safe enough');
  assert.equal(acceptanceThreshold([0.001, 0.04], 0.005, 0.03), 0.001, 'the per-sample cap holds');

  const policy = resolvePolicy({ auditShare: 0 });
  const risk = (pWrong: number, classPosterior?: number, attributes = 0) => ({ ...combineRisks([{ field: 'class', pWrong, why: 'a: "cat"' }, { field: 'attribute:pose', pWrong: attributes, why: 'pose' }], classPosterior) });
  const threshold = { primary: 0.01, attributes: 0.2 };
  const base = { sampleId: 's1', layer1Passed: true, blocking: [], threshold, policy };
  assert.deepEqual(decideByRisk({ ...base, risk: risk(0.004, 0.996) }), { disposition: 'accepted', reason: 'confident' });
  assert.deepEqual(decideByRisk({ ...base, risk: risk(0.1, 0.9) }), { disposition: 'review', reason: 'uncertain' });
  assert.deepEqual(decideByRisk({ ...base, risk: risk(0.6, 0.4) }), { disposition: 'resample', reason: 'low_confidence' });
  assert.deepEqual(decideByRisk({ ...base, blocking: ['unknown_class'], risk: risk(0) }), { disposition: 'review', reason: 'layer2_conflict' });
  assert.deepEqual(decideByRisk({ ...base, layer1Passed: false }), { disposition: 'rejected', reason: 'layer1_failed' });
  // A secondary attribute has its own, looser budget: a 2–1 split at 15% passes under 0.2, not over it.
  assert.deepEqual(decideByRisk({ ...base, risk: risk(0.004, 0.996, 0.15) }), { disposition: 'accepted', reason: 'confident' });
  assert.deepEqual(decideByRisk({ ...base, risk: risk(0.004, 0.996, 0.3) }), { disposition: 'review', reason: 'uncertain' });
  assert.match(riskFindings('uncertain', risk(0.004, 0.996, 0.3), threshold, policy, [])[0]!.message, /probability an attribute is wrong 0\.3000 is above this batch's attribute threshold 0\.2000/);
  const why = riskFindings('uncertain', risk(0.1, 0.9), threshold, policy, []);
  assert.match(why[0]!.message, /probability the labels are wrong 0\.1000 is above this batch's acceptance threshold 0\.0100/);
  assert.match(why[1]!.message, /^class: wrong with probability 0\.1000 — a: "cat"/);
  assert.equal(DEFAULT_POLICY.fusion.mode, 'risk');
  assert.equal(resolvePolicy({ fusion: { mode: 'linear' } }).fusion.mode, 'linear');
});

test('a review budget sends people the likeliest errors and the rest back for more labels', () => {
  const uncertain = [{ id: 'a', pWrong: 0.06 }, { id: 'b', pWrong: 0.4 }, { id: 'c', pWrong: 0.2 }, { id: 'd', pWrong: 0.08 }];
  assert.deepEqual([...overReviewBudget(uncertain, 2)].sort(), ['a', 'd']);
  assert.deepEqual([...overReviewBudget(uncertain, 2.9)].sort(), ['a', 'd'], 'a budget is whole reviews');
  assert.equal(overReviewBudget(uncertain, 10).size, 0);
  assert.equal(overReviewBudget(uncertain, 0).size, 4);
  const policy = resolvePolicy({ auditShare: 0, fusion: { risk: { reviewBudget: 0.05 } } });
  const risk = combineRisks([{ field: 'class', pWrong: 0.1, why: 'a: "cat"' }], 0.9);
  const base = { sampleId: 's1', layer1Passed: true, blocking: [], threshold: { primary: 0.01, attributes: 0.2 }, policy, risk };
  assert.deepEqual(decideByRisk({ ...base, overBudget: true }), { disposition: 'resample', reason: 'review_budget' });
  assert.deepEqual(decideByRisk(base), { disposition: 'review', reason: 'uncertain' });
  // Only the risk's reviews are budgeted: a confident sample is still accepted, a blocking one still reviewed.
  assert.deepEqual(decideByRisk({ ...base, overBudget: true, risk: combineRisks([{ field: 'class', pWrong: 0.001, why: '' }], 0.999) }), { disposition: 'accepted', reason: 'confident' });
  assert.deepEqual(decideByRisk({ ...base, overBudget: true, blocking: ['unknown_class'] }), { disposition: 'review', reason: 'layer2_conflict' });
  assert.match(riskFindings('review_budget', risk, base.threshold, policy, [])[0]!.message, /review budget \(5\.0% of its samples\)/);
  assert.equal(DEFAULT_POLICY.fusion.risk.reviewBudget, 1, 'no budget unless a project sets one');
});

test("an alerted annotator's samples are sampled for review only where their labels count", () => {
  const agree = { compared: 2, agreed: 2 };
  assert.deepEqual(alertsThatMatter([], { a: agree }), []);
  // Two others settle the sample and the alerted one agrees: nothing to learn.
  assert.deepEqual(alertsThatMatter(['c'], { a: agree, b: agree, c: agree }), []);
  // The alerted one dissents: worth a look.
  assert.deepEqual(alertsThatMatter(['c'], { a: agree, b: agree, c: { compared: 2, agreed: 1 } }), ['c']);
  // Only one other annotator: the alerted one's labels are needed to settle it.
  assert.deepEqual(alertsThatMatter(['c'], { a: agree, c: agree }), ['c']);
  assert.deepEqual(alertsThatMatter(['c'], { a: agree, b: { compared: 2, agreed: 1 }, c: agree }), ['c']);
  assert.deepEqual(alertsThatMatter(['c'], null), ['c'], 'no layer-2 tallies (single annotation): sampled as before');
});

test("a per-label budget counts an article's entities as labels: a long clean document is accepted where a per-sample budget sends it to a person", () => {
  // 50 spans each 0.3% likely wrong (existence and type), one sample; and a short disputed one: 4 spans, one at 45%.
  const spans = (n: number, p: number, hot = 0) => Array.from({ length: n }, (_, i) => [
    { field: `spans:${i}:exists`, pWrong: i < hot ? 0.45 : p, why: '' }, { field: `spans:${i}:class`, pWrong: p / 3, why: '' }, { field: `spans:${i}:geometry`, pWrong: 0, why: '' },
  ]).flat();
  const long = combineRisks(spans(50, 0.003));
  const disputed = combineRisks(spans(4, 0.003, 1));
  assert.ok(long.primary > 0.15, `per sample the article is ${long.primary} likely wrong`);
  const label = labelRisk(long);
  assert.equal(label.labels, 50);
  assert.ok(Math.abs(label.expectedWrong - 50 * (1 - 0.997 * 0.999)) < 1e-9);
  assert.deepEqual(primaryRisk(long, 'sample'), { rate: long.primary, weight: 1, worst: long.primary });
  // A dropped object and the sample's class are labels of their own; attributes are not labels here.
  assert.equal(labelRisk(combineRisks([{ field: 'class', pWrong: 0.1, why: '' }, { field: 'boxes:dropped:3', pWrong: 0.2, why: '' }, { field: 'boxes:0:attribute:pose', pWrong: 0.5, why: '' }])).labels, 2);

  const policy = resolvePolicy({ auditShare: 0, fusion: { risk: { per: 'label' } } });
  const t = batchThresholds([long, disputed], policy.fusion.risk);
  const base = { sampleId: 's1', layer1Passed: true, blocking: [], threshold: t, policy };
  assert.equal(decideByRisk({ ...base, risk: long }).disposition, 'accepted');
  assert.equal(decideByRisk({ ...base, risk: disputed }).disposition, 'review');
  assert.match(riskFindings('uncertain', disputed, t, policy, []).map((f) => f.message).join(' '), /0\.46 of its 4 labels are expected wrong \(0\.1156 a label; the likeliest wrong 0\.45/);
  // A coin toss among a hundred sure entities is 0.5% of the labels, but no label over the cap is auto-accepted.
  const oneToss = combineRisks(spans(100, 0.00001, 1));
  assert.ok(primaryRisk(oneToss, 'label').rate < 0.005);
  assert.equal(decideByRisk({ ...base, threshold: batchThresholds([long, oneToss], policy.fusion.risk), risk: oneToss }).disposition, 'review');
  // The same two under the default budget: neither is safe enough.
  const perSample = resolvePolicy({ auditShare: 0 });
  const ts = batchThresholds([long, disputed], perSample.fusion.risk);
  assert.equal(decideByRisk({ ...base, threshold: ts, policy: perSample, risk: long }).disposition, 'review');
  // Weighted by labels: a one-label sample 30% likely wrong beside 50 sure labels is 0.6% of labels, over a
  // 0.5% target; at 20% it is 0.4%, under it; beside 500 sure labels 30% is well under.
  assert.equal(acceptanceThreshold([0.0001, 0.3], 0.005, 1, [50, 1]), 0.0001);
  assert.equal(acceptanceThreshold([0.0001, 0.2], 0.005, 1, [50, 1]), 0.2);
  assert.equal(acceptanceThreshold([0.0001, 0.3], 0.005, 1, [500, 1]), 0.3);
});
