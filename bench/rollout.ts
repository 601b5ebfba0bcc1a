/**
 * `npm run bench -- rollout`: the gray-release engine's statistics and flag evaluation, as JSON lines.
 *  - A/A with a look after every batch (1,000 runs × 50 looks × 200 samples, success rate 0.9 in both
 *    arms): how often the always-valid sequential test ever declares a difference (target ≤ α + 0.5%),
 *    beside the fixed-sample z-test checked at every look (what peeking does to it).
 *  - Power: a candidate 3 points worse (0.87 vs 0.90) — how often it is rolled back and after how many
 *    samples; a candidate equal to the control — how often it is promoted under a 1-point non-inferiority
 *    margin, and how soon.
 *  - Beside each: confseq (PyPI; Waudby-Smith & Ramdas' empirical-Bernstein and the asymptotic normal-mixture
 *    confidence sequences) on the very same simulated outcomes, judged by the same rule (bench/confseq_rollout.py).
 *  - Flags: evaluations per second through OpenFeature with the in-memory FlagProvider the Postgres one
 *    builds on, vs a bare bucketOf + armAt on the same ids (the SDK's overhead, as a ratio); and layer 3's
 *    own path (PinnedSplits: a page of 512 samples at a time, with project and annotators in the context).
 */
import { OpenFeature } from '@openfeature/server-sdk';
import { armAt, bucketOf } from '../src/rollout/bucketing';
import { FlagProvider } from '../src/rollout/flag-provider';
import { simulateRollouts } from '../src/rollout/simulate';
import { PinnedSplits } from '../src/rollout/pinned-split';
import { confseqOnStream, type ConfseqFigures } from './confseq';

const ALPHA = 0.05;

const simulate = (o: Omit<Parameters<typeof simulateRollouts>[0], 'alpha'>, stream?: Uint8Array) => simulateRollouts({ ...o, alpha: ALPHA }, stream);

export async function flagThroughput(): Promise<void> {
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
  const splits = new PinnedSplits();
  const split = { flag: 'layer3.model', salt: 's', arms: [{ variant: 'int8', share: 0.25 }, { variant: 'control', share: 0.75 }] };
  t = process.hrtime.bigint();
  let layer3 = 0;
  for (let i = 0; i < ids.length; i += 512) {
    const page = ids.slice(i, i + 512);
    const arms = await Promise.all(page.map((id) => splits.armOf(split, { project: 'p', sampleId: id, annotators: ['ann-1', 'ann-2', 'ann-3'] })));
    layer3 += arms.filter((a) => a === 'int8').length;
  }
  const layer3Ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (layer3 !== bare) throw new Error(`layer 3's pinned-split path disagrees with the bare hash: ${layer3} vs ${bare}`);
  console.log(JSON.stringify({
    bench: 'rollout.flags-layer3', evaluations: ids.length, evaluationsPerSec: Math.round(ids.length / (layer3Ms / 1000)),
    baseline: 'bucketOf + armAt', baselineEvaluationsPerSec: Math.round(ids.length / (bareMs / 1000)), ratio: +(bareMs / layer3Ms).toFixed(3),
    microsecondsPerSample: +((layer3Ms * 1000) / ids.length).toFixed(2),
  }));
  await OpenFeature.close();
}

export async function rolloutBench(): Promise<void> {
  const base = { runs: 1000, looks: 50, perLook: 200, margin: 0 };
  // Every run's outcomes are recorded so that confseq judges the very same samples with the same rule.
  const scenario = (o: { control: number; candidate: number; margin: number; seed: number }) => {
    const stream = new Uint8Array(base.runs * base.looks * base.perLook);
    const ours = simulate({ ...base, ...o }, stream);
    return { ours, peer: confseqOnStream(stream, { ...base, margin: o.margin, alpha: ALPHA, minPerArm: 200 }) };
  };
  const peerFigures = (peer: ReturnType<typeof confseqOnStream>, pick: (f: ConfseqFigures) => Record<string, unknown>) =>
    'skipped' in peer ? { peer: 'confseq', peerSkipped: peer.skipped } : {
      peer: 'confseq 0.0.11 on the same outcomes', peerEmpiricalBernstein: pick(peer.empiricalBernstein), peerNormalMixture: pick(peer.normalMixture),
    };

  const aa = scenario({ control: 0.9, candidate: 0.9, margin: 0, seed: 1 });
  console.log(JSON.stringify({
    bench: 'rollout.aa-peeking', runs: base.runs, looks: base.looks, samplesPerLook: base.perLook, alpha: ALPHA,
    falsePositiveRate: aa.ours.seqDifference, target: ALPHA + 0.005, met: aa.ours.seqDifference <= ALPHA + 0.005,
    baseline: 'fixed-sample z-test at every look', baselineFalsePositiveRate: aa.ours.naiveDifference,
    ...peerFigures(aa.peer, (f) => ({ falsePositiveRate: f.differenceRate })),
  }));
  const worse = scenario({ control: 0.9, candidate: 0.87, margin: 0.01, seed: 2 });
  console.log(JSON.stringify({
    bench: 'rollout.power-worse', control: 0.9, candidate: 0.87, margin: 0.01, rolledBack: worse.ours.rolledBack, promoted: worse.ours.promoted, medianSamplesToDecide: worse.ours.medianSamplesToDecide,
    ...peerFigures(worse.peer, (f) => ({ rolledBack: f.rolledBack, promoted: f.promoted, medianSamplesToDecide: f.medianSamplesToDecide })),
  }));
  const equal = scenario({ control: 0.9, candidate: 0.9, margin: 0.01, seed: 3 });
  console.log(JSON.stringify({
    bench: 'rollout.power-noninferior', control: 0.9, candidate: 0.9, margin: 0.01, promoted: equal.ours.promoted, rolledBack: equal.ours.rolledBack, medianSamplesToDecide: equal.ours.medianSamplesToDecide,
    ...peerFigures(equal.peer, (f) => ({ promoted: f.promoted, rolledBack: f.rolledBack, medianSamplesToDecide: f.medianSamplesToDecide })),
  }));
  await flagThroughput();
}
