/**
 * `npm run bench -- rollout`: the gray-release engine's statistics and flag evaluation, as JSON lines.
 *  - A/A with a look after every batch (1,000 runs × 50 looks × 200 samples, success rate 0.9 in both
 *    arms): how often the always-valid sequential test ever declares a difference (target ≤ α + 0.5%),
 *    beside the fixed-sample z-test checked at every look (what peeking does to it).
 *  - Power: a candidate 3 points worse (0.87 vs 0.90) — how often it is rolled back and after how many
 *    samples; a candidate equal to the control — how often it is promoted under a 1-point non-inferiority
 *    margin, and how soon.
 *  - Flags: evaluations per second through OpenFeature with the in-memory FlagProvider the Postgres one
 *    builds on, vs a bare bucketOf + armAt on the same ids (the SDK's overhead, as a ratio).
 */
import { OpenFeature } from '@openfeature/server-sdk';
import { armAt, bucketOf } from '../src/rollout/bucketing';
import { FlagProvider } from '../src/rollout/flag-provider';
import { naiveZTestP, rolloutVerdict, type ArmCounts } from '../src/rollout/sequential';
import { prng } from '../src/util/prng';

const ALPHA = 0.05;

function simulate(o: { runs: number; looks: number; perLook: number; control: number; candidate: number; margin: number; seed: number }) {
  const rnd = prng(o.seed);
  let seqDifference = 0, naiveDifference = 0, promoted = 0, rolledBack = 0;
  const samplesToDecide: number[] = [];
  for (let r = 0; r < o.runs; r++) {
    const a: ArmCounts = { n: 0, successes: 0 }, b: ArmCounts = { n: 0, successes: 0 };
    let previous: [number, number] | null = null;
    let seqHit = false, naiveHit = false, decided = false;
    for (let look = 0; look < o.looks; look++) {
      for (let i = 0; i < o.perLook; i++) {
        if (rnd() < 0.5) { a.n++; if (rnd() < o.control) a.successes++; } else { b.n++; if (rnd() < o.candidate) b.successes++; }
      }
      const v = rolloutVerdict(a, b, { alpha: ALPHA, tau: 0.02, margin: o.margin, minPerArm: 200, previous });
      previous = v.interval;
      if (v.interval && a.n >= 200 && b.n >= 200 && (v.interval[0] > 0 || v.interval[1] < 0)) seqHit = true;
      if (naiveZTestP(a, b) < ALPHA) naiveHit = true;
      if (!decided && v.decision !== 'continue') {
        decided = true;
        if (v.decision === 'promote') promoted++; else rolledBack++;
        samplesToDecide.push(a.n + b.n);
      }
    }
    if (seqHit) seqDifference++;
    if (naiveHit) naiveDifference++;
  }
  samplesToDecide.sort((x, y) => x - y);
  return { seqDifference: seqDifference / o.runs, naiveDifference: naiveDifference / o.runs, promoted: promoted / o.runs, rolledBack: rolledBack / o.runs, medianSamplesToDecide: samplesToDecide[Math.floor(samplesToDecide.length / 2)] ?? null };
}

async function flagThroughput(): Promise<void> {
  // The in-memory provider PgFlagProvider builds on: evaluation is the same, no database needed to time it.
  const provider = new FlagProvider([{ key: 'layer3.model', salt: 's', defaultVariant: 'fp32', enabled: true, arms: [{ variant: 'int8', share: 0.25 }, { variant: 'fp32', share: 0.75 }] }]);
  await OpenFeature.setProviderAndWait(provider);
  const client = OpenFeature.getClient();
  const ids = Array.from({ length: 200_000 }, (_, i) => `sample-${i}`);
  const arms = [{ variant: 'int8', share: 0.25 }, { variant: 'fp32', share: 0.75 }];
  let t = process.hrtime.bigint();
  let bare = 0;
  for (const id of ids) if (armAt(arms, bucketOf('layer3.model', 's', id)) === 'int8') bare++;
  const bareMs = Number(process.hrtime.bigint() - t) / 1e6;
  t = process.hrtime.bigint();
  let viaSdk = 0;
  for (const id of ids) if ((await client.getStringValue('layer3.model', 'fp32', { targetingKey: id, project: 'p' })) === 'int8') viaSdk++;
  const sdkMs = Number(process.hrtime.bigint() - t) / 1e6;
  if (bare !== viaSdk) throw new Error(`the SDK path disagrees with the bare hash: ${viaSdk} vs ${bare}`);
  console.log(JSON.stringify({
    bench: 'rollout.flags', evaluations: ids.length, evaluationsPerSec: Math.round(ids.length / (sdkMs / 1000)),
    baseline: 'bucketOf + armAt', baselineEvaluationsPerSec: Math.round(ids.length / (bareMs / 1000)), ratio: +(bareMs / sdkMs).toFixed(3), treatedShare: +(bare / ids.length).toFixed(4),
  }));
  await OpenFeature.close();
}

export async function rolloutBench(): Promise<void> {
  const base = { runs: 1000, looks: 50, perLook: 200, margin: 0 };
  const aa = simulate({ ...base, control: 0.9, candidate: 0.9, seed: 1 });
  console.log(JSON.stringify({
    bench: 'rollout.aa-peeking', runs: base.runs, looks: base.looks, samplesPerLook: base.perLook, alpha: ALPHA,
    falsePositiveRate: aa.seqDifference, target: ALPHA + 0.005, met: aa.seqDifference <= ALPHA + 0.005,
    baseline: 'fixed-sample z-test at every look', baselineFalsePositiveRate: aa.naiveDifference,
  }));
  const worse = simulate({ ...base, control: 0.9, candidate: 0.87, margin: 0.01, seed: 2 });
  console.log(JSON.stringify({ bench: 'rollout.power-worse', control: 0.9, candidate: 0.87, margin: 0.01, rolledBack: worse.rolledBack, promoted: worse.promoted, medianSamplesToDecide: worse.medianSamplesToDecide }));
  const equal = simulate({ ...base, control: 0.9, candidate: 0.9, margin: 0.01, seed: 3 });
  console.log(JSON.stringify({ bench: 'rollout.power-noninferior', control: 0.9, candidate: 0.9, margin: 0.01, promoted: equal.promoted, rolledBack: equal.rolledBack, medianSamplesToDecide: equal.medianSamplesToDecide }));
  await flagThroughput();
}
