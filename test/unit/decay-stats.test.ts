import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asymptoticPValue, exactPValue, kolmogorovQ, ksTwoSample } from '../../src/qc/stats/ks';
import { histogramQuantile, leastSquaresSlope, timeBin, TIME_BIN_COUNT } from '../../src/qc/stats/trend';
import { bucketsForBatch, evaluateSubject, sampleDecayFindings, splitWindows, STREAM, type BatchSampleQuality, type Bucket } from '../../src/qc/decay';
import { DEFAULT_POLICY, resolvePolicy } from '../../src/qc/policy';

const close = (a: number, b: number, tol: number, what = ''): void => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);

test('Kolmogorov limiting distribution matches the published critical values c(α)', () => {
  // Smirnov's table: c(0.10) = 1.2238, c(0.05) = 1.3581, c(0.01) = 1.6276, c(0.001) = 1.9495.
  close(kolmogorovQ(1.2238), 0.10, 5e-4, 'α=0.10');
  close(kolmogorovQ(1.3581), 0.05, 5e-4, 'α=0.05');
  close(kolmogorovQ(1.6276), 0.01, 5e-4, 'α=0.01');
  close(kolmogorovQ(1.9495), 0.001, 5e-5, 'α=0.001');
});

test('exact two-sample p-values match the Gnedenko–Korolyuk closed form for n = m', () => {
  // P(D ≥ k/n) = 2 Σ_{j≥1} (−1)^{j−1} C(2n, n − jk) / C(2n, n).
  const C = (n: number, k: number): number => { if (k < 0 || k > n) return 0; let r = 1; for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i; return r; };
  const gk = (n: number, k: number): number => { let s = 0; for (let j = 1; n - j * k >= 0; j++) s += (j % 2 ? 1 : -1) * C(2 * n, n - j * k); return Math.min(1, (2 * s) / C(2 * n, n)); };
  for (const n of [3, 5, 8, 20]) {
    for (let k = 1; k <= n; k++) close(exactPValue(n, n, k * n), gk(n, k), 1e-12, `n=${n} k=${k}`);
  }
  close(exactPValue(5, 5, 3 * 5), 90 / 252, 1e-12);
});

test('ksTwoSample: statistic, exact small-sample p-values, unequal sizes, ties and the asymptotic switch', () => {
  // scipy.stats.ks_2samp([1,2,3],[4,5,6]) → statistic 1.0, pvalue 0.1.
  const a = ksTwoSample([1, 2, 3], [4, 5, 6]);
  assert.equal(a.d, 1);
  close(a.p, 0.1, 1e-12);
  assert.equal(a.method, 'exact');
  // Completely separated samples of sizes 3 and 4: 2 of the C(7,3) = 35 paths.
  close(ksTwoSample([1, 2, 3], [7, 8, 9, 10]).p, 2 / 35, 1e-12);
  // Identical samples (all ties): D = 0, p = 1.
  const t = ksTwoSample([1, 1, 2, 2], [1, 2, 1, 2]);
  assert.equal(t.d, 0);
  assert.equal(t.p, 1);
  // At n = m = 100 the exact and the corrected asymptotic p-values agree to within the lattice atom at D
  // (the asymptotic form treats D as continuous): 0.0539 vs 0.0470.
  close(exactPValue(100, 100, 0.19 * 100 * 100), asymptoticPValue(100, 100, 0.19), 0.01, 'n=100');
  const big = ksTwoSample(Array.from({ length: 200 }, (_, i) => i), Array.from({ length: 200 }, (_, i) => i + 40));
  assert.equal(big.method, 'asymptotic');
  close(big.d, 0.2, 1e-12);
  assert.ok(big.p < 0.001);
});

test('least-squares slope and binned quantiles', () => {
  assert.equal(leastSquaresSlope([1, 3, 5, 7]), 2);
  close(leastSquaresSlope([2, 2, 3], [0, 1, 2])!, 0.5, 1e-12);
  assert.equal(leastSquaresSlope([5]), null);
  const hist = new Array(TIME_BIN_COUNT).fill(0);
  for (const ms of [1000, 1000, 1000, 1000, 60_000]) hist[timeBin(ms)]++;
  close(histogramQuantile(hist, 0.5)!, 1000, 1000 * 0.16, 'p50');
  close(histogramQuantile(hist, 0.95)!, 60_000, 60_000 * 0.16, 'p95');
  assert.equal(histogramQuantile(new Array(TIME_BIN_COUNT).fill(0), 0.5), null);
});

/** A batch of `n` samples by ann-a (with ann-b), each with the given layer-3 score and ann-a's agreement. */
function batch(index: number, n: number, opts: { agreeA: number; score: (i: number) => number; ms?: number; l1FailEvery?: number }): { buckets: Map<string, Bucket> } {
  const samples: BatchSampleQuality[] = Array.from({ length: n }, (_, i) => ({
    id: `b${index}-s${i}`, l1Passed: !(opts.l1FailEvery && i % opts.l1FailEvery === 0), l2Score: 1, l3Score: opts.score(i),
    annotations: [{ annotator: 'ann-a', durationMs: opts.ms ?? 20_000 }, { annotator: 'ann-b', durationMs: 20_000 }],
  }));
  const agreement = new Map([['ann-a', { compared: n, agreed: Math.round(n * opts.agreeA) }], ['ann-b', { compared: n, agreed: n }]]);
  return { buckets: bucketsForBatch(samples, agreement, new Date(Date.UTC(2026, 0, 1, 0, index))) };
}

function history(batches: Array<{ buckets: Map<string, Bucket> }>, subject: string): Bucket[] {
  return batches.map((b) => b.buckets.get(subject)!).reverse();
}

test('decay: an annotator whose agreement and speed drop is alerted; the others and the stream are not', () => {
  const policy = resolvePolicy({ layer4: { window: { short: 100, long: 1000 }, minReference: 50 } }).layer4;
  const good = Array.from({ length: 9 }, (_, i) => batch(i, 100, { agreeA: 0.95, score: (j) => 0.8 + (j % 10) / 50 }));
  const bad = batch(9, 100, { agreeA: 0.6, ms: 4_000, score: (j) => 0.8 + (j % 10) / 50 });
  const all = [...good, bad];
  const a = evaluateSubject(history(all, 'ann-a'), policy);
  assert.equal(a.short.samples, 100);
  assert.equal(a.reference.samples, 900);
  assert.deepEqual(a.breaches.map((b) => b.metric).sort(), ['annotationTimeP50', 'l2Agreement']);
  const l2 = a.breaches.find((b) => b.metric === 'l2Agreement')!;
  close(l2.shortValue, 0.6, 1e-9);
  close(l2.referenceValue, 0.95, 1e-9);
  assert.ok(a.slopes.l2Agreement! < 0);
  assert.deepEqual(evaluateSubject(history(all, 'ann-b'), policy).breaches, []);
  const stream = evaluateSubject(history(all, STREAM), policy);
  // Half of the stream's annotations (ann-a's) became five times faster: the stream's median time shows it too.
  assert.deepEqual(stream.breaches.map((b) => b.metric), ['annotationTimeP50']);
  assert.ok(stream.stability > 0.9, `same score distribution → stable, got ${stream.stability}`);

  const verdict = sampleDecayFindings(stream, new Map([['ann-a', a.breaches]]), [{ annotator: 'ann-a' }, { annotator: 'ann-b' }]);
  assert.equal(verdict.passed, false);
  assert.deepEqual(verdict.alertedAnnotators, ['ann-a']);
  assert.match(verdict.findings.find((f) => f.message.includes('l2Agreement'))!.message, /ann-a: l2Agreement 0\.600 recently vs 0\.950 before/);
});

test('decay: a shift in the layer-3 score distribution lowers stability through the KS test', () => {
  const policy = resolvePolicy({ layer4: { window: { short: 100, long: 1000 }, minReference: 50 } }).layer4;
  const before = Array.from({ length: 9 }, (_, i) => batch(i, 100, { agreeA: 1, score: (j) => 0.7 + (j % 30) / 100 }));
  const shifted = batch(9, 100, { agreeA: 1, score: (j) => 0.3 + (j % 30) / 100 });
  const s = evaluateSubject(history([...before, shifted], STREAM), policy);
  assert.ok(s.ks && s.ks.d > 0.9 && s.ks.p < 1e-6, JSON.stringify(s.ks));
  assert.ok(s.stability < 0.2);
  assert.deepEqual(s.breaches.map((b) => b.metric), ['l3MeanScore']);
  assert.ok(sampleDecayFindings(s, new Map(), [{ annotator: 'ann-a' }]).findings.some((f) => f.rule === 'layer4.score_shift'));
});

test('decay: too little history compares nothing; time windows split by data age', () => {
  const policy = DEFAULT_POLICY.layer4;
  const few = evaluateSubject(history([batch(0, 10, { agreeA: 0.1, score: () => 0.1 })], 'ann-a'), policy);
  assert.deepEqual(few.breaches, []);
  assert.equal(few.stability, 1);
  assert.match(few.note!, /at least 50 each/);

  const now = new Date(Date.UTC(2026, 0, 1, 12));
  const at = (minutesAgo: number): Bucket => ({ ...batch(0, 10, { agreeA: 1, score: () => 1 }).buckets.get(STREAM)!, dataTime: new Date(now.getTime() - minutesAgo * 60_000) });
  const split = splitWindows([at(1), at(30), at(90), at(600)], { kind: 'time', short: 3600, long: 4 * 3600 }, now);
  assert.equal(split.short.length, 2);
  assert.equal(split.reference.length, 1);
  assert.equal(split.exhausted, true);
});

test('policy: the layer-4 short window must be shorter than the long one', () => {
  assert.throws(() => resolvePolicy({ layer4: { window: { short: 500, long: 500 } } }), /layer4\/window\/short \(500\) must be less than long/);
  assert.throws(() => resolvePolicy({ layer3: { models: 'bow' } }), /\/qcPolicy\/layer3\/models must be array/);
  assert.throws(() => resolvePolicy({ layer3: { models: ['my model'] } }), /\/qcPolicy\/layer3\/models\/0 must match pattern/);
  assert.deepEqual(resolvePolicy({ layer3: { models: ['bow', 'bow@2', 'acme/bow@2'] } }).layer3.models, ['bow', 'bow@2', 'acme/bow@2']);
});

test('decay in data time: a bucket is placed by when its samples were labelled, and an older batch finishing last does not move the short window', () => {
  const policy = resolvePolicy({ layer4: { window: { short: 100, long: 1000 }, minReference: 50 } }).layer4;
  const labelledAt = (index: number): Date => new Date(Date.UTC(2026, 0, 1) + index * 3_600_000);
  const timed = (index: number, agreeA: number): Bucket => {
    const samples: BatchSampleQuality[] = Array.from({ length: 100 }, (_, i) => ({
      id: `b${index}-s${i}`, l1Passed: true, l2Score: 1, l3Score: 0.9,
      annotations: [{ annotator: 'ann-a', durationMs: 20_000, submittedAt: new Date(labelledAt(index).getTime() - i * 1000) }],
    }));
    // Processed "now", long after it was labelled: the bucket keeps the labelling time.
    return bucketsForBatch(samples, new Map([['ann-a', { compared: 100, agreed: Math.round(100 * agreeA) }]]), new Date(Date.UTC(2027, 0, 1))).get('ann-a')!;
  };
  assert.equal(timed(3, 1).dataTime.toISOString(), labelledAt(3).toISOString());
  // ann-a decays in the newest data (batch 9). Batch 0 (oldest data) is processed last.
  const buckets = [...Array.from({ length: 9 }, (_, i) => timed(i + 1, 0.95)), timed(9.5, 0.6), timed(0, 0.95)];
  const byDataTime = [...buckets].sort((x, y) => y.dataTime.getTime() - x.dataTime.getTime());
  const alerted = evaluateSubject(byDataTime, policy);
  assert.deepEqual(alerted.breaches.map((b) => b.metric), ['l2Agreement'], 'the alert stands after the late, older batch');
  // In processing order the late batch would be "recent" and hide the decay: what the old layer 4 did.
  const byArrival = [...buckets].reverse();
  assert.deepEqual(evaluateSubject(byArrival, policy).breaches, []);
});

test('an alert judges the annotator\'s work since its window began, not their older samples', () => {
  const breaches = [{ metric: 'l2Agreement' as const, shortValue: 0.6, referenceValue: 0.95, delta: 0.35, threshold: 0.1, slope: null }];
  const quiet = evaluateSubject([], resolvePolicy({}).layer4);
  const since = new Map([['ann-a', '2026-01-01T10:00:00.000Z']]);
  const at = (iso: string) => [{ annotator: 'ann-a', submittedAt: new Date(iso) }];
  assert.deepEqual(sampleDecayFindings(quiet, new Map([['ann-a', breaches]]), at('2026-01-01T11:00:00Z'), since).alertedAnnotators, ['ann-a']);
  assert.deepEqual(sampleDecayFindings(quiet, new Map([['ann-a', breaches]]), at('2026-01-01T09:00:00Z'), since).alertedAnnotators, []);
  assert.deepEqual(sampleDecayFindings(quiet, new Map([['ann-a', breaches]]), [{ annotator: 'ann-a' }], since).alertedAnnotators, ['ann-a'], 'no submittedAt: judged by the alert');
});
