import { test } from 'node:test';
import assert from 'node:assert/strict';
import { categoryCounts, fleissKappa, krippendorffAlphaNominal } from '../../src/qc/stats/agreement';
import { annotatorAccuracy, dawidSkene, flooredConfusion, posterior, type ClassVote } from '../../src/qc/stats/dawid-skene';
import { prng } from '../../src/demo/dataset';

test("Fleiss' kappa reproduces the 10-subject, 14-rater, 5-category worked example (κ ≈ 0.210)", () => {
  const table = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
  ];
  assert.equal(fleissKappa(table)!.toFixed(3), '0.210');
});

test("Fleiss' kappa: perfect agreement is 1, single-rater items are skipped, no pairable item is undefined", () => {
  assert.equal(fleissKappa(categoryCounts([['a', 'a'], ['b', 'b'], ['a', 'a', 'a'], ['b']], ['a', 'b'])), 1);
  assert.equal(fleissKappa(categoryCounts([['a'], ['b']], ['a', 'b'])), undefined);
  // Systematic disagreement is worse than chance.
  assert.ok(fleissKappa(categoryCounts([['a', 'b'], ['a', 'b'], ['b', 'a']], ['a', 'b']))! < 0);
});

test("Krippendorff's nominal alpha reproduces the four-coder example with missing values (α ≈ 0.743)", () => {
  // Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: observers A–D, 12 units, '.' = missing.
  const A = [1, 2, 3, 3, 2, 1, 4, 1, 2, null, null, null];
  const B = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, null, 3];
  const C = [null, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, null];
  const D = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, null];
  const units = A.map((_, u) => [A[u], B[u], C[u], D[u]].filter((v): v is number => v !== null));
  assert.equal(krippendorffAlphaNominal(units)!.toFixed(3), '0.743');
});

test("Krippendorff's alpha: identical coders give 1; no variation gives undefined", () => {
  assert.equal(krippendorffAlphaNominal([['x', 'x'], ['y', 'y'], ['x', 'x', 'x']]), 1);
  assert.equal(krippendorffAlphaNominal([['x', 'x'], ['x', 'x']]), undefined);
});

/** Synthetic crowd: two careful annotators (90%), three careless ones (40%) who mostly agree on a wrong class. */
function syntheticCrowd(n: number, seed: number): { truth: number[]; items: ClassVote[][] } {
  const rnd = prng(seed);
  const k = 3;
  const truth: number[] = [];
  const items: ClassVote[][] = [];
  for (let i = 0; i < n; i++) {
    const t = Math.floor(rnd() * k);
    truth.push(t);
    const votes: ClassVote[] = [];
    for (const [annotator, acc] of [['good-1', 0.9], ['good-2', 0.9], ['bad-1', 0.4], ['bad-2', 0.4], ['bad-3', 0.4]] as const) {
      // Careless annotators' mistakes are biased towards the "next" class, so they outvote the careful ones together.
      const label = rnd() < acc ? t : annotator.startsWith('bad') && rnd() < 0.8 ? (t + 1) % k : Math.floor(rnd() * k);
      votes.push({ annotator, label });
    }
    items.push(votes);
  }
  return { truth, items };
}

test('Dawid–Skene beats majority vote when careless annotators outnumber careful ones', () => {
  const { truth, items } = syntheticCrowd(2000, 11);
  const fit = dawidSkene(items, ['a', 'b', 'c']);
  const argmax = (p: number[]): number => p.indexOf(Math.max(...p));
  const dsAccuracy = fit.posteriors.filter((p, i) => argmax(p) === truth[i]).length / truth.length;
  const majorityAccuracy = items.filter((votes, i) => {
    const counts = [0, 0, 0];
    for (const v of votes) counts[v.label]! += 1;
    return argmax(counts) === truth[i];
  }).length / truth.length;
  assert.ok(dsAccuracy > majorityAccuracy + 0.1, `DS ${dsAccuracy} vs majority ${majorityAccuracy}`);
  assert.ok(dsAccuracy > 0.9, `DS accuracy ${dsAccuracy}`);
  const acc = (a: string): number => annotatorAccuracy(fit.confusion[a]!, fit.classPrior);
  assert.ok(acc('good-1') > 0.85 && acc('bad-1') < 0.5, `good ${acc('good-1')}, bad ${acc('bad-1')}`);
});

test('Dawid–Skene is incremental: counts from earlier batches carry the reliability into a small new batch', () => {
  const { items } = syntheticCrowd(2000, 3);
  const history = dawidSkene(items, ['a', 'b', 'c']);
  // A small batch alone is too little to learn from; with the stored counts as prior it is judged like the history.
  const { truth, items: small } = syntheticCrowd(30, 99);
  const warm = dawidSkene(small, ['a', 'b', 'c'], history.updated);
  const argmax = (p: number[]): number => p.indexOf(Math.max(...p));
  const warmAcc = warm.posteriors.filter((p, i) => argmax(p) === truth[i]).length / truth.length;
  assert.ok(warmAcc >= 0.85, `warm-started accuracy ${warmAcc}`);
  // The stored counts grow by exactly this batch's items.
  const total = (c: typeof warm.updated): number => c.classCounts.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total(warm.updated) - total(history.updated) - 30) < 1e-6);
  // A class added to the ontology later is re-indexed, not mixed up.
  const grown = dawidSkene(small, ['a', 'b', 'c', 'd'], history.updated);
  const trueD = grown.updated.confusion['good-1']![3]!.reduce((a, b) => a + b, 0);
  const trueA = grown.updated.confusion['good-1']![0]!.reduce((a, b) => a + b, 0);
  assert.ok(trueD < 0.01 && trueA > 500, `mass on the new class ${trueD}, on a ${trueA}`);
});

test("the confusion floor lifts a careful annotator's unseen cells but keeps a swapper's other votes informative", () => {
  const prior = [0.25, 0.25, 0.25, 0.25];
  // Careful: 96% right, errors seen only once in a batch (one cell ~0, the others a little).
  const careful = [[0.96, 0.04, 0, 0], [0.02, 0.96, 0.02, 0], [0, 0, 0.96, 0.04], [0, 0.02, 0.02, 0.96]];
  const floored = flooredConfusion(careful, prior);
  assert.ok(floored.every((row, t) => row.every((x, g) => g === t || x > 0.01)), 'no vote against a careful annotator is impossible');
  // Swapper: gives the partner class (0↔1, 2↔3) 60% of the time and rarely anything else.
  const swapper = [[0.38, 0.6, 0.01, 0.01], [0.6, 0.38, 0.01, 0.01], [0.01, 0.01, 0.38, 0.6], [0.01, 0.01, 0.6, 0.38]];
  const s = flooredConfusion(swapper, prior);
  assert.ok(Math.abs(s[0]![1]! - 0.6) < 0.01, 'the systematic confusion is kept');
  assert.ok(s[0]![2]! < 0.02, `the swapper's incidental error is not spread with the systematic one: ${s[0]![2]}`);
  // Two careful annotators say 0 and the swapper says 2: under a flattened swapper that third vote said
  // nothing; kept sharp, it is evidence for 3 (whose partner is 2), and the consensus is less certain.
  const votes: ClassVote[] = [{ annotator: 'a', label: 0 }, { annotator: 'b', label: 0 }, { annotator: 's', label: 2 }];
  const c = flooredConfusion(careful, prior);
  const p = posterior(votes, prior, { a: c, b: c, s }, 4);
  const flat = swapper.map((row, t) => row.map((x, g) => (g === t ? x : Math.max(x, 0.62 / 3))));
  const pFlat = posterior(votes, prior, { a: c, b: c, s: flat.map((r) => { const z = r.reduce((a, b) => a + b, 0); return r.map((x) => x / z); }) }, 4);
  assert.ok(1 - p[0]! > 3 * (1 - pFlat[0]!), `P(wrong) ${1 - p[0]!} vs flattened ${1 - pFlat[0]!}`);
});

test('Dawid–Skene: a class nobody has seen as the truth yet inherits each annotator\'s overall care, not a coin flip', () => {
  // 60 items, all "cat" (0) by three careful annotators; then one says "dog" (1) against the other two.
  const items: ClassVote[][] = Array.from({ length: 60 }, () => ['a', 'b', 'c'].map((annotator) => ({ annotator, label: 0 })));
  items.push([{ annotator: 'a', label: 0 }, { annotator: 'b', label: 1 }, { annotator: 'c', label: 0 }]);
  const fit = dawidSkene(items, ['cat', 'dog']);
  // With a uniform prior on the unseen "dog" row, the lone vote looked like the truth (labels alone gave cat 0.07).
  const flat = posterior(items[60]!, [0.5, 0.5], fit.confusion, 2);
  assert.ok(flat[0]! > 0.95, `cat from the labels alone: ${flat[0]}`);
  assert.ok(fit.confusion.b![1]![1]! > 0.8, `b's unseen dog row takes b's care: ${fit.confusion.b![1]}`);
});
