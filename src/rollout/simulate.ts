import { prng } from '../util/prng';
import { naiveZTestP, rolloutVerdict, type ArmCounts } from './sequential';

/**
 * Simulated rollouts with a look after every batch: each run splits samples 50/50 between a control and a
 * candidate with the given success rates and checks the sequential verdict (and, beside it, the
 * fixed-sample z-test) after each batch. What the rollout bench reports and the unit test bounds. With `stream`
 * (runs × looks × perLook bytes) every sample is recorded as (candidate arm ? 2 : 0) | (success ? 1 : 0), so a
 * peer tool can be run on the very same outcomes.
 */
export function simulateRollouts(o: { runs: number; looks: number; perLook: number; control: number; candidate: number; margin: number; seed: number; alpha: number }, stream?: Uint8Array) {
  if (stream && stream.length !== o.runs * o.looks * o.perLook) throw new Error(`stream must hold runs × looks × perLook = ${o.runs * o.looks * o.perLook} bytes, not ${stream.length}`);
  let at = 0;
  const rnd = prng(o.seed);
  let seqDifference = 0, naiveDifference = 0, promoted = 0, rolledBack = 0;
  const samplesToDecide: number[] = [];
  for (let r = 0; r < o.runs; r++) {
    const a: ArmCounts = { n: 0, successes: 0 }, b: ArmCounts = { n: 0, successes: 0 };
    let previous: [number, number] | null = null;
    let seqHit = false, naiveHit = false, decided = false;
    for (let look = 0; look < o.looks; look++) {
      for (let i = 0; i < o.perLook; i++) {
        let code: number;
        if (rnd() < 0.5) { a.n++; code = rnd() < o.control ? 1 : 0; a.successes += code; } else { b.n++; code = rnd() < o.candidate ? 1 : 0; b.successes += code; code |= 2; }
        if (stream) stream[at++] = code;
      }
      const v = rolloutVerdict(a, b, { alpha: o.alpha, tau: 0.02, margin: o.margin, minPerArm: 200, previous });
      previous = v.interval;
      // A difference declared either way: under A/A, a false positive.
      if (v.interval && a.n >= 200 && b.n >= 200 && (v.interval[0] > 0 || v.interval[1] < 0)) seqHit = true;
      if (naiveZTestP(a, b) < o.alpha) naiveHit = true;
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
