import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchBySimilarity, minCostAssignment } from '../../src/qc/stats/assignment';
import { iou, intervalIou, medianBox, toTokenInterval } from '../../src/qc/consistency/matching';
import { checkConsistency, objectAccuracies, type AnnotatorLabels } from '../../src/qc/consistency';
import { checkTags, tagSequenceFindings, viterbi, tagSet } from '../../src/qc/consistency/tags';
import { DEFAULT_POLICY } from '../../src/qc/policy';
import type { Labels } from '../../src/ingest/envelope';
import type { Ontology } from '../../src/projects/ontology';

const ontology: Ontology = { classes: ['cat', 'dog', 'car', 'truck'], exclusive: [['car', 'truck']], attributes: { color: ['red', 'blue', 'other'] } };
const ann = (annotator: string, labels: Labels): AnnotatorLabels => ({ annotator, labels });
const check = (anns: AnnotatorLabels[], extra: { onto?: Ontology; weights?: Record<string, number>; layer2?: Partial<typeof DEFAULT_POLICY.layer2>; payload?: Record<string, unknown> } = {}) =>
  checkConsistency({ annotations: anns, payload: extra.payload ?? {}, ontology: extra.onto ?? ontology, policy: { ...DEFAULT_POLICY.layer2, ...extra.layer2 }, weights: extra.weights ?? {} });
const rules = (r: { findings: Array<{ rule: string }> }): string[] => r.findings.map((f) => f.rule).sort();

test('Hungarian assignment is optimal where greedy is not', () => {
  // Greedy takes the 0.9 pair first and is left with 0.1; the optimum pairs 0.8 + 0.8.
  const sim = [[0.9, 0.8], [0.8, 0.1]];
  assert.deepEqual(matchBySimilarity(sim, 0.5), [[0, 1], [1, 0]]);
  assert.deepEqual(minCostAssignment([[4, 1, 3], [2, 0, 5], [3, 2, 2]]), [1, 0, 2]);
  // Rectangular both ways.
  assert.deepEqual(minCostAssignment([[1, 0, 5]]), [1]);
  assert.deepEqual(minCostAssignment([[5], [1], [3]]), [-1, 0, -1]);
  // A pair under the threshold is never preferred over a valid one.
  assert.deepEqual(matchBySimilarity([[0.49, 0.6], [0.0, 0.0]], 0.5), [[0, 1]]);
});

test('IoU, interval overlap, median box and token intervals', () => {
  assert.equal(iou({ x: 0, y: 0, w: 10, h: 10 }, { x: 5, y: 0, w: 10, h: 10 }), 50 / 150);
  assert.equal(iou({ x: 0, y: 0, w: 1, h: 1 }, { x: 5, y: 5, w: 1, h: 1 }), 0);
  assert.equal(intervalIou({ start: 0, end: 10 }, { start: 5, end: 15 }), 5 / 15);
  assert.deepEqual(medianBox([{ x: 0, y: 0, w: 10, h: 10 }, { x: 2, y: 2, w: 10, h: 10 }, { x: 100, y: 100, w: 10, h: 10 }]), { x: 2, y: 2, w: 10, h: 10 });
  assert.deepEqual(toTokenInterval('New York is big', { start: 0, end: 8 }), { start: 0, end: 2 });
  assert.deepEqual(toTokenInterval('New York is big', { start: 1, end: 7 }), { start: 0, end: 2 });
});

test('classes: unanimous passes; disagreement is a class_conflict naming annotators; exclusive classes are an exclusive_conflict', () => {
  const ok = check([ann('a', { classes: ['cat'] }), ann('b', { classes: ['cat'] })]);
  assert.equal(ok.passed, true);
  assert.deepEqual(ok.consensus.classes, { classes: ['cat'], support: 1 });
  const conflict = check([ann('a', { classes: ['cat'] }), ann('b', { classes: ['cat'] }), ann('c', { classes: ['dog'] })]);
  assert.deepEqual(rules(conflict), ['class_conflict']);
  assert.deepEqual(conflict.findings[0]!.annotators, ['a', 'b', 'c']);
  assert.match(conflict.findings[0]!.message, /c: "dog"/);
  assert.deepEqual(conflict.tallies.c, { compared: 1, agreed: 0 });
  assert.equal(conflict.agreement, 2 / 3);
  assert.deepEqual(rules(check([ann('a', { classes: ['car'] }), ann('b', { classes: ['truck'] })])), ['exclusive_conflict']);
  // A project that accepts a 2-of-3 majority.
  assert.equal(check([ann('a', { classes: ['cat'] }), ann('b', { classes: ['cat'] }), ann('c', { classes: ['dog'] })], { layer2: { minClassAgreement: 0.6 } }).passed, true);
});

test('classes: reliability weights let one careful annotator outvote two careless ones; ontology checks apply to a single annotation', () => {
  const r = check([ann('careful', { classes: ['dog'] }), ann('sloppy-1', { classes: ['cat'] }), ann('sloppy-2', { classes: ['cat'] })], { weights: { careful: 0.95, 'sloppy-1': 0.3, 'sloppy-2': 0.3 } });
  assert.deepEqual(r.consensus.classes!.classes, ['dog']);
  const single = check([ann('a', { classes: ['unicorn', 'cat'] })]);
  assert.deepEqual(rules(single), ['multiple_classes', 'unknown_class']);
  assert.equal(single.agreement, 1);
  const multi = check([ann('a', { classes: ['car', 'truck'] })], { onto: { ...ontology, multiLabel: true } });
  assert.deepEqual(rules(multi), ['exclusive_conflict']);
  const multiConflict = check([ann('a', { classes: ['cat', 'dog'] }), ann('b', { classes: ['cat'] }), ann('c', { classes: ['cat', 'dog'] })], { onto: { ...ontology, multiLabel: true } });
  assert.deepEqual(multiConflict.consensus.classes!.classes, ['cat', 'dog']);
  assert.deepEqual(rules(multiConflict), ['class_conflict']);
});

const box = (x: number, y: number, cls: string, extra: Partial<{ w: number; h: number; attributes: Record<string, string> }> = {}) => ({ x, y, w: extra.w ?? 10, h: extra.h ?? 10, class: cls, attributes: extra.attributes });

const big = { w: 100, h: 100 };

test('boxes: optimal matching across annotators, consensus by reliability-weighted fusion, and every conflict type', () => {
  const same = check([
    ann('a', { boxes: [box(0, 0, 'cat', big), box(500, 500, 'dog', big)] }),
    ann('b', { boxes: [box(502, 500, 'dog', big), box(2, 0, 'cat', big)] }),
    ann('c', { boxes: [box(0, 1, 'cat', big), box(500, 501, 'dog', big)] }),
  ]);
  assert.equal(same.passed, true, JSON.stringify(same.findings));
  // Equal (default) reliabilities: the corners' mean.
  assert.deepEqual(same.consensus.boxes!.map((b) => [b.class, +b.geometry.x.toFixed(3), +b.geometry.y.toFixed(3)]), [['cat', 0.667, 0.333], ['dog', 500.667, 500.333]]);

  const missing = check([ann('a', { boxes: [box(0, 0, 'cat'), box(50, 50, 'dog')] }), ann('b', { boxes: [box(0, 0, 'cat')] })]);
  assert.deepEqual(rules(missing), ['missing_object']);
  assert.match(missing.findings[0]!.message, /drawn by a has no match from b/);
  assert.equal(missing.findings[0]!.pointer, '/annotations/0/labels/boxes/1');

  assert.deepEqual(rules(check([ann('a', { boxes: [box(0, 0, 'cat')] }), ann('b', { boxes: [box(0, 0, 'dog')] })])), ['class_conflict']);
  assert.deepEqual(rules(check([ann('a', { boxes: [box(0, 0, 'car')] }), ann('b', { boxes: [box(0, 0, 'truck')] })])), ['exclusive_conflict']);
  // IoU 0.667: matched (≥ 0.5) but not in agreement (< 0.75).
  assert.deepEqual(rules(check([ann('a', { boxes: [box(0, 0, 'cat')] }), ann('b', { boxes: [box(2, 0, 'cat')] })])), ['geometry_conflict']);
  // No overlap at all: two objects, each missing from the other annotator.
  assert.deepEqual(rules(check([ann('a', { boxes: [box(0, 0, 'cat')] }), ann('b', { boxes: [box(30, 0, 'cat')] })])), ['missing_object', 'missing_object']);
  const attrs = check([ann('a', { boxes: [box(0, 0, 'car', { attributes: { color: 'red' } })] }), ann('b', { boxes: [box(0, 0, 'car', { attributes: { color: 'pink' } })] })]);
  assert.deepEqual(rules(attrs), ['attribute_conflict', 'attribute_value']);
});

test('boxes: crowded scenes are matched optimally, not greedily', () => {
  // b's first box overlaps both of a's; greedy on IoU would steal a's second box's partner.
  const r = check([
    ann('a', { boxes: [box(0, 0, 'cat', { w: 10 }), box(6, 0, 'dog', { w: 10 })] }),
    ann('b', { boxes: [box(4, 0, 'cat', { w: 10 }), box(9, 0, 'dog', { w: 10 })] }),
  ], { layer2: { boxMatchIou: 0.3, boxAgreeIou: 0.3 } });
  assert.deepEqual(rules(r), [], JSON.stringify(r.findings));
});

test('spans: matched by character or token overlap with the same conflict types', () => {
  const text = 'Angela Merkel visited New York';
  const exact = check([ann('a', { spans: [{ start: 0, end: 13, label: 'PER' }] }), ann('b', { spans: [{ start: 0, end: 13, label: 'PER' }] })]);
  assert.equal(exact.passed, true);
  const boundary = [ann('a', { spans: [{ start: 0, end: 13, label: 'PER' }] }), ann('b', { spans: [{ start: 0, end: 12, label: 'PER' }] })];
  assert.deepEqual(rules(check(boundary)), ['geometry_conflict']);
  // In token mode both spans cover the same two tokens.
  assert.equal(check(boundary, { layer2: { spanUnit: 'token' }, payload: { text } }).passed, true);
  assert.deepEqual(rules(check([ann('a', { spans: [{ start: 22, end: 30, label: 'LOC' }] }), ann('b', { spans: [{ start: 22, end: 30, label: 'ORG' }] })])), ['class_conflict']);
  assert.deepEqual(rules(check([ann('a', { spans: [{ start: 22, end: 30, label: 'LOC' }] }), ann('b', { spans: [] })])), ['missing_object']);
  assert.deepEqual(rules(check([ann('a', { spans: [{ start: 0, end: 3, label: 'XYZ' }] })], { onto: { entities: ['PER', 'LOC'] } })), ['unknown_class']);
});

test('attributes: per-key value conflicts and values outside the ontology', () => {
  const r = check([ann('a', { attributes: { color: 'red', size: 'l' } }), ann('b', { attributes: { color: 'blue', size: 'l' } })]);
  assert.deepEqual(rules(r), ['attribute_conflict']);
  assert.match(r.findings[0]!.message, /a: "red", b: "blue"/);
  assert.deepEqual(rules(check([ann('a', { attributes: { color: 'green' } })])), ['attribute_value']);
});

test('sample agreement is the weakest label kind, so agreeing attributes cannot hide a split class vote', () => {
  const r = check([ann('a', { classes: ['cat'], attributes: { color: 'red' } }), ann('b', { classes: ['dog'], attributes: { color: 'red' } }), ann('c', { classes: ['car'], attributes: { color: 'red' } })],
    { layer2: { minClassAgreement: 0.3 } });
  assert.equal(r.passed, true);
  assert.deepEqual(r.agreementByKind, { classes: 1 / 3, attributes: 1 });
  assert.equal(r.agreement, 1 / 3);
});

test('tags: invalid BIO and BIOES transitions are findings at the offending token', () => {
  const f = (tags: string[], scheme: 'BIO' | 'BIOES') => tagSequenceFindings(tags, scheme, '/t', 'a').map((x) => `${x.pointer} ${x.rule}`);
  assert.deepEqual(f(['B-PER', 'I-PER', 'O'], 'BIO'), []);
  assert.deepEqual(f(['O', 'I-PER'], 'BIO'), ['/t/1 invalid_transition']);
  assert.deepEqual(f(['B-LOC', 'I-PER'], 'BIO'), ['/t/1 invalid_transition']);
  assert.deepEqual(f(['I-PER'], 'BIO'), ['/t/0 invalid_transition']);
  assert.deepEqual(f(['B-PER', 'E-PER', 'S-LOC', 'O'], 'BIOES'), []);
  assert.deepEqual(f(['B-PER', 'O'], 'BIOES'), ['/t/1 invalid_transition']);
  assert.deepEqual(f(['O', 'B-PER'], 'BIOES'), ['/t/1 invalid_transition']);
  assert.deepEqual(f(['E-PER'], 'BIO'), ['/t/0 unknown_tag']);
});

test('tags: Viterbi decodes the best valid path where per-token majority would be invalid', () => {
  const labels = tagSet(['PER'], 'BIO');
  // Token 1 alone prefers I-PER, but token 0 prefers O: majority gives O, I-PER (invalid).
  const lp = (o: number, b: number, i: number) => [Math.log(o), Math.log(b), Math.log(i)];
  const path = viterbi([lp(0.6, 0.35, 0.05), lp(0.2, 0.2, 0.6)], labels, 'BIO')!;
  assert.deepEqual(path, ['B-PER', 'I-PER']);
  const r = checkTags([
    ann('a', { tags: ['B-PER', 'I-PER', 'O'] }), ann('b', { tags: ['O', 'I-PER', 'O'] }), ann('c', { tags: ['B-PER', 'I-PER', 'O'] }),
  ], { scheme: 'BIO', minAgreement: 1, weights: {} });
  assert.deepEqual(r.consensus, ['B-PER', 'I-PER', 'O']);
  assert.deepEqual(r.findings.map((x) => `${x.pointer} ${x.rule}`), ['/annotations/1/labels/tags/1 invalid_transition', '/annotations/*/labels/tags/0 tag_conflict']);
  assert.deepEqual(r.tallies.b, { compared: 3, agreed: 2 });
  const mismatch = checkTags([ann('a', { tags: ['O'] }), ann('b', { tags: ['O', 'O'] })], { scheme: 'BIO', minAgreement: 1, weights: {} });
  assert.deepEqual(mismatch.findings.map((x) => x.rule), ['tag_length_mismatch']);
});

test("a box's attribute is voted once, with attribute accuracies: the consensus value and who is tallied as dissenting agree", () => {
  // a is the better judge of classes, b of colours: the colour is b's, so a is the one who dissented.
  const r = checkConsistency({
    annotations: [ann('a', { boxes: [box(0, 0, 'car', { attributes: { color: 'red' } })] }), ann('b', { boxes: [box(0, 0, 'car', { attributes: { color: 'blue' } })] })],
    payload: {}, ontology, policy: DEFAULT_POLICY.layer2, weights: { a: 0.95, b: 0.6 }, attributeWeights: { a: 0.55, b: 0.95 },
  });
  assert.equal(r.consensus.boxes?.[0]?.attributes?.color, 'blue');
  const conflict = r.findings.find((f) => f.rule === 'attribute_conflict');
  assert.ok(conflict && conflict.pointer.endsWith('/attributes/color'));
  assert.deepEqual({ a: r.tallies.a?.agreed, b: r.tallies.b?.agreed }, { a: 0, b: 1 });
});

test("split objects: under `dontCare` an object only some drew is a don't-care region whose doubt does not count; too many of them go to a person", () => {
  const far = { w: 8, h: 8 };
  const anns = [
    ann('a', { boxes: [box(0, 0, 'car', big), box(300, 300, 'car', big), box(600, 20, 'car', far)] }),
    ann('b', { boxes: [box(1, 0, 'car', big), box(300, 301, 'car', big), box(600, 20, 'car', far)] }),
    ann('c', { boxes: [box(0, 1, 'car', big), box(301, 300, 'car', big)] }),
  ];
  const voted = check(anns);
  const open = check(anns, { layer2: { splitObjects: 'dontCare' } });
  // The same three objects either way; only the far car, which c did not draw, changes.
  assert.deepEqual(voted.consensus.boxes!.map((b) => b.dontCare ?? false), [false, false, false]);
  assert.deepEqual(open.consensus.boxes!.map((b) => b.dontCare ?? false), [false, false, true]);
  assert.ok(voted.risk.fields.some((f) => f.field === 'boxes:2:exists' && f.pWrong > 0.05), JSON.stringify(voted.risk.fields));
  assert.ok(!open.risk.fields.some((f) => f.field.startsWith('boxes:2:')), 'nothing of a don\'t-care region is at risk');
  assert.ok(open.risk.pWrong < voted.risk.pWrong / 3, `${open.risk.pWrong} vs ${voted.risk.pWrong}`);
  // Still said, for the reviewer and for c's record.
  assert.deepEqual(rules(open), ['missing_object']);
  assert.deepEqual(open.blocking, []);

  // One of three in doubt is within the default share (0.5); with c drawing nothing but the first car, two of three are not.
  const sparse = check([anns[0]!, anns[1]!, ann('c', { boxes: [box(0, 1, 'car', big)] })], { layer2: { splitObjects: 'dontCare' } });
  assert.deepEqual(sparse.consensus.boxes!.map((b) => b.dontCare ?? false), [false, true, true]);
  assert.deepEqual(sparse.blocking, ['dont_care_share']);
  assert.match(sparse.findings.find((f) => f.rule === 'dont_care_share')!.message, /2 of 3 boxes are in doubt/);
  // Spans follow the same policy.
  const spans = check([ann('a', { spans: [{ start: 0, end: 4, label: 'PER' }, { start: 10, end: 14, label: 'LOC' }] }), ann('b', { spans: [{ start: 0, end: 4, label: 'PER' }] })], { layer2: { splitObjects: 'dontCare', maxDontCareShare: 1 } });
  assert.deepEqual(spans.consensus.spans!.map((s) => s.dontCare ?? false), [false, true]);
});

test('lone boxes of unlike size are two objects, not one drawn off target: a far car beside a bicycle is not fused into a box nobody drew', () => {
  // As on a real street photo: one annotator drew an 11×9 car far down the road, another the 159×102 bicycle next to it.
  const r = check([
    ann('a', { boxes: [box(0, 0, 'car', big), box(1139, 443, 'car', { w: 11, h: 9 })] }),
    ann('b', { boxes: [box(1, 0, 'car', big), box(1204, 386, 'dog', { w: 159, h: 102 })] }),
    ann('c', { boxes: [box(0, 1, 'car', big)] }),
  ]);
  assert.deepEqual(rules(r), ['missing_object', 'missing_object']);
  assert.ok(!r.consensus.boxes!.some((b) => b.geometry.x > 1140 && b.geometry.x < 1200), JSON.stringify(r.consensus.boxes));
  // Like sizes still count as one object drawn in different places.
  const near = check([
    ann('a', { boxes: [box(0, 0, 'car', big), box(1139, 443, 'car', { w: 12, h: 10 })] }),
    ann('b', { boxes: [box(1, 0, 'car', big), box(1150, 443, 'car', { w: 14, h: 9 })] }),
    ann('c', { boxes: [box(0, 1, 'car', big)] }),
  ]);
  const missing = near.findings.filter((f) => f.rule === 'missing_object');
  assert.equal(missing.length, 1, JSON.stringify(near.findings));
  assert.match(missing[0]!.message, /drawn by a, b has no match from c/);
});

test('object classes: a batch teaches how often each annotator names what they draw, for projects without sample classes', () => {
  const onto: Ontology = { entities: ['PER', 'LOC', 'ORG', 'MISC'] };
  const text = 'Japan beat Syria in Al Ain on Friday';
  const spans = [{ start: 0, end: 5, label: 'LOC' }, { start: 11, end: 16, label: 'LOC' }, { start: 20, end: 26, label: 'LOC' }];
  const samples = Array.from({ length: 20 }, () => ({ payload: { text }, annotations: [ann('a', { spans }), ann('b', { spans })] }));
  const learned = objectAccuracies(samples, onto, DEFAULT_POLICY.layer2);
  // 60 agreeing names each, shrunk by 4 pseudo-comparisons at the default 0.85.
  assert.ok(Math.abs(learned.classes.a! - (60 + 0.85 * 4) / 64) < 1e-9, JSON.stringify(learned));
  const typeRisk = (r: ReturnType<typeof check>) => r.risk.fields.find((f) => f.field === 'spans:0:class')!.pWrong;
  const base = checkConsistency({ annotations: samples[0]!.annotations, payload: { text }, ontology: onto, policy: DEFAULT_POLICY.layer2, weights: {} });
  const taught = checkConsistency({ annotations: samples[0]!.annotations, payload: { text }, ontology: onto, policy: DEFAULT_POLICY.layer2, weights: {}, objectClassWeights: learned.classes });
  assert.ok(typeRisk(base) > 0.01, `two agreeing at the default accuracy: ${typeRisk(base)}`);
  assert.ok(typeRisk(taught) < typeRisk(base) / 10, `${typeRisk(taught)} vs ${typeRisk(base)}`);
  // Two annotators split on a type: one of them erred, nobody can say which — both count half, neither is credited by the tie-break.
  const split = [...samples.slice(0, 10), ...Array.from({ length: 10 }, () => ({ payload: { text }, annotations: [ann('a', { spans }), ann('b', { spans: spans.map((x, i) => (i === 0 ? { ...x, label: 'ORG' } : x)) })] }))];
  const even = objectAccuracies(split, onto, DEFAULT_POLICY.layer2);
  assert.equal(even.classes.a, even.classes.b);
  assert.ok(Math.abs(even.classes.a! - (55 + 0.85 * 4) / 64) < 1e-9, JSON.stringify(even));
  // A sample-class fit, where there is one, still speaks for the annotator.
  const fitted = checkConsistency({ annotations: samples[0]!.annotations, payload: { text }, ontology: onto, policy: DEFAULT_POLICY.layer2, weights: { a: 0.85, b: 0.85 }, objectClassWeights: learned.classes });
  assert.equal(typeRisk(fitted), typeRisk(base));
});

test('span bounds are voted, not averaged: the consensus is a span an annotator drew, and a split on bounds is a coin toss', () => {
  const onto: Ontology = { entities: ['ORG'] };
  const text = 'Sporting Gijon won';
  const r = checkConsistency({
    annotations: [ann('a', { spans: [{ start: 0, end: 14, label: 'ORG' }] }), ann('b', { spans: [{ start: 0, end: 8, label: 'ORG' }] })],
    payload: { text }, ontology: onto, policy: DEFAULT_POLICY.layer2, weights: {},
  });
  const g = r.consensus.spans![0]!.geometry;
  // Averaged ends would give 0–11, "Sporting Gi".
  assert.ok([8, 14].includes(g.end) && g.start === 0, text.slice(g.start, g.end));
  const geometry = r.risk.fields.find((f) => f.field === 'spans:0:geometry')!;
  assert.ok(geometry.pWrong > 0.3, JSON.stringify(geometry));
  assert.match(geometry.why, /bounds as a drew them \(b drew other bounds\)/);
  // Agreeing bounds leave nothing in doubt.
  const same = checkConsistency({ annotations: [ann('a', { spans: [{ start: 0, end: 14, label: 'ORG' }] }), ann('b', { spans: [{ start: 0, end: 14, label: 'ORG' }] })], payload: { text }, ontology: onto, policy: DEFAULT_POLICY.layer2, weights: {} });
  assert.ok(same.risk.fields.find((f) => f.field === 'spans:0:geometry')!.pWrong < 0.05);
});

test('span bounds: a batch teaches whose bounds to trust, apart from who finds the entities', () => {
  const onto: Ontology = { entities: ['ORG'] };
  const text = 'Sporting Gijon won';
  const full = { start: 0, end: 14, label: 'ORG' };
  const short = { start: 0, end: 8, label: 'ORG' };
  // a finds every entity but cuts it short; b and c draw it whole.
  const batch = Array.from({ length: 20 }, () => ({ payload: { text }, annotations: [ann('a', { spans: [short] }), ann('b', { spans: [full] }), ann('c', { spans: [full] })] }));
  const learned = objectAccuracies(batch, onto, DEFAULT_POLICY.layer2);
  assert.equal(learned.objects.a, learned.objects.b, 'all three drew what is there');
  assert.ok(learned.bounds.a! < 0.25 && learned.bounds.b! > 0.95, JSON.stringify(learned.bounds));
  // a and b alone split on where it ends: existence accuracies cannot tell them apart, bounds accuracies can.
  const pair = [ann('a', { spans: [short] }), ann('b', { spans: [full] })];
  const judge = (bounds?: Record<string, number>) => checkConsistency({ annotations: pair, payload: { text }, ontology: onto, policy: DEFAULT_POLICY.layer2, weights: {}, objectWeights: learned.objects, ...(bounds ? { objectBoundsWeights: bounds } : {}) });
  const geometryOf = (r: ReturnType<typeof judge>) => ({ span: r.consensus.spans![0]!.geometry, pWrong: r.risk.fields.find((f) => f.field === 'spans:0:geometry')!.pWrong });
  const blind = geometryOf(judge());
  const taught = geometryOf(judge(learned.bounds));
  assert.ok(blind.pWrong > 0.3, JSON.stringify(blind));
  assert.deepEqual([taught.span.start, taught.span.end], [0, 14]);
  assert.ok(taught.pWrong < 0.1, JSON.stringify(taught));
});
