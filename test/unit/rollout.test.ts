import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { armAt, bucketOf, chiSquare, chiSquareSurvival, splitProblem } from '../../src/rollout/bucketing';
import { compareArms, naiveZTestP, normalSurvival, rolloutVerdict } from '../../src/rollout/sequential';
import { simulateRollouts } from '../../src/rollout/simulate';
import { PinnedSplits } from '../../src/rollout/pinned-split';
import { OpenFeature } from '@openfeature/server-sdk';

const REPO = path.resolve(__dirname, '..', '..');

test('bucketing is the same in another process, and a fixed point for a flag and salt', () => {
  const ids = Array.from({ length: 50 }, (_, i) => `sample-${i}`);
  const here = ids.map((id) => bucketOf('layer3-model', 's1', id));
  const there = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '-e',
    `const { bucketOf } = require('./src/rollout/bucketing'); console.log(JSON.stringify(${JSON.stringify(ids)}.map((id) => bucketOf('layer3-model', 's1', id))))`], { cwd: REPO, encoding: 'utf8' })) as number[];
  assert.deepEqual(there, here);
  assert.ok(here.every((b) => b >= 0 && b < 1));
  assert.notDeepEqual(ids.map((id) => bucketOf('layer3-model', 's2', id)), here, 'a new salt reshuffles');
});

test('bucketing is uniform: chi-square over 100,000 ids in 100 cells does not reject at 1%', () => {
  const cells = new Array<number>(100).fill(0);
  for (let i = 0; i < 100_000; i++) cells[Math.floor(bucketOf('flag', 'salt', `id-${i}`) * 100)]!++;
  const r = chiSquare(cells, cells.map(() => 0.01));
  assert.equal(r.df, 99);
  assert.ok(r.p > 0.01, `chi-square ${r.statistic.toFixed(1)} on 99 df, p ${r.p}`);
});

test('ramping 10% → 25% keeps everyone treated at 10% treated; arms take ranges in order', () => {
  const at = (share: number) => [{ variant: 'candidate', share }, { variant: 'control', share: 1 - share }];
  let kept = 0, before = 0, after = 0;
  for (let i = 0; i < 20_000; i++) {
    const b = bucketOf('flag', 'salt', `u${i}`);
    const a10 = armAt(at(0.1), b), a25 = armAt(at(0.25), b);
    if (a10 === 'candidate') { before++; if (a25 === 'candidate') kept++; }
    if (a25 === 'candidate') after++;
  }
  assert.equal(kept, before, 'nobody leaves the treatment when it grows');
  assert.ok(Math.abs(before / 20_000 - 0.1) < 0.01 && Math.abs(after / 20_000 - 0.25) < 0.01, `${before} ${after}`);
  assert.equal(splitProblem(at(0.3)), undefined);
  assert.match(splitProblem([{ variant: 'a', share: 0.5 }, { variant: 'a', share: 0.5 }])!, /distinct/);
  assert.match(splitProblem([{ variant: 'a', share: 0.5 }, { variant: 'b', share: 0.4 }])!, /sum to 1/);
});

test('chi-square survival and the normal tail match known values', () => {
  assert.ok(Math.abs(chiSquareSurvival(3.841459, 1) - 0.05) < 1e-6);
  assert.ok(Math.abs(chiSquareSurvival(123.225, 99) - 0.05) < 1e-3);
  assert.ok(Math.abs(chiSquareSurvival(10.828, 1) - 0.001) < 1e-5);
  assert.ok(Math.abs(normalSurvival(1.959964) - 0.025) < 1e-6);
  // A 10% / 90% split observed as 13% / 87% over 10,000 units is a sample-ratio mismatch.
  assert.ok(chiSquare([1300, 8700], [0.1, 0.9]).p < 0.001);
  assert.ok(chiSquare([1010, 8990], [0.1, 0.9]).p > 0.1);
});

test('the confidence sequence is wider than a fixed-sample interval, narrows with data, and its verdicts wait for the minimum', () => {
  const c = compareArms({ n: 1000, successes: 900 }, { n: 1000, successes: 900 })!;
  assert.equal(c.estimate, 0);
  const fixedHalf = 1.96 * Math.sqrt(2 * 0.9 * 0.1 / 1000);
  assert.ok(c.interval[1] > fixedHalf, 'wider than the fixed-sample 95% interval: it holds at every look');
  const big = compareArms({ n: 100_000, successes: 90_000 }, { n: 100_000, successes: 90_000 })!;
  assert.ok(big.interval[1] < c.interval[1] / 5);
  const opts = { alpha: 0.05, tau: 0.02, margin: 0.01, minPerArm: 500 };
  assert.equal(rolloutVerdict({ n: 100, successes: 90 }, { n: 100, successes: 60 }, opts).decision, 'continue', 'too few to decide');
  assert.equal(rolloutVerdict({ n: 5000, successes: 4500 }, { n: 5000, successes: 4000 }, opts).decision, 'rollback');
  assert.equal(rolloutVerdict({ n: 20_000, successes: 18_000 }, { n: 20_000, successes: 18_000 }, opts).decision, 'promote', 'non-inferior within 1 point');
  // The running intersection never widens.
  const first = rolloutVerdict({ n: 600, successes: 540 }, { n: 600, successes: 540 }, opts);
  const second = rolloutVerdict({ n: 700, successes: 600 }, { n: 700, successes: 640 }, { ...opts, previous: first.interval });
  assert.ok(second.interval![0] >= first.interval![0] && second.interval![1] <= first.interval![1]);
  assert.ok(naiveZTestP({ n: 1000, successes: 900 }, { n: 1000, successes: 930 }) < 0.05);
});

test('A/A with a look after every batch: the sequential test stays near α where the naive z-test does not (200 runs)', () => {
  const r = simulateRollouts({ runs: 200, looks: 40, perLook: 200, control: 0.9, candidate: 0.9, margin: 0, seed: 11, alpha: 0.05 });
  assert.ok(r.seqDifference <= 0.05 + 0.03, `sequential false positives ${r.seqDifference}`);
  assert.ok(r.naiveDifference > 0.15, `peeking inflates the naive test: ${r.naiveDifference}`);
});

test('a recorded simulation stream holds the very outcomes the verdicts saw (what confseq is run on in the bench)', () => {
  const o = { runs: 20, looks: 10, perLook: 100, control: 0.9, candidate: 0.6, margin: 0, seed: 5, alpha: 0.05 };
  const stream = new Uint8Array(o.runs * o.looks * o.perLook);
  assert.deepEqual(simulateRollouts(o, stream), simulateRollouts(o), 'recording does not change the draws');
  const rate = (arm: number) => {
    const picked = stream.filter((c) => c >> 1 === arm);
    return picked.filter((c) => (c & 1) === 1).length / picked.length;
  };
  assert.ok(Math.abs(rate(0) - 0.9) < 0.02 && Math.abs(rate(1) - 0.6) < 0.03, `arm rates ${rate(0)}, ${rate(1)}`);
  assert.throws(() => simulateRollouts(o, new Uint8Array(10)), /stream must hold runs × looks × perLook = 20000 bytes/);
});

test('layer 3\'s OpenFeature evaluation of a pinned split gives the bucketing\'s arm for every sample, whatever the live flag does meanwhile', async () => {
  const splits = new PinnedSplits();
  const at10 = { flag: 'layer3.m', salt: 's1', arms: [{ variant: 'm@2', share: 0.1 }, { variant: 'control', share: 0.9 }] };
  const at25 = { ...at10, arms: [{ variant: 'm@2', share: 0.25 }, { variant: 'control', share: 0.75 }] };
  const ids = Array.from({ length: 5_000 }, (_, i) => `s-${i}`);
  const ctx = (id: string) => ({ project: 'p', sampleId: id, annotators: ['ann-1'] });
  const first = await Promise.all(ids.map((id) => splits.armOf(at10, ctx(id))));
  assert.deepEqual(first, ids.map((id) => armAt(at10.arms, bucketOf(at10.flag, at10.salt, id))));
  // A later batch pinned the ramped split: its own provider, while a retried batch of the 10% split still gets its arms.
  const ramped = await Promise.all(ids.map((id) => splits.armOf(at25, ctx(id))));
  assert.deepEqual(await Promise.all(ids.map((id) => splits.armOf(at10, ctx(id)))), first);
  assert.ok(ramped.filter((a) => a === 'm@2').length > first.filter((a) => a === 'm@2').length);
  assert.ok(first.every((a, i) => a !== 'm@2' || ramped[i] === 'm@2'), 'the ramp keeps the first 10%');
  await OpenFeature.close();
});
