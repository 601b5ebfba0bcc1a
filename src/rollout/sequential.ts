/**
 * An always-valid comparison of two arms' success rates (the candidate model's verdict agreeing with the
 * final label, say), safe to look at after every batch: the mixture sequential probability ratio test
 * (mSPRT; Johari, Pekelis & Walsh 2017) with a normal mixture over the difference, on the normal
 * approximation of the two proportions. Its confidence sequence covers the true difference at every
 * look at once with probability ≥ 1 − α, so stopping the first time it decides keeps the error rate at α
 * however often one peeks — a fixed-sample z-test checked after every batch does not.
 */

export interface ArmCounts {
  n: number;
  successes: number;
}

export interface SequentialOptions {
  /** Error rate over the whole experiment, all looks included. */
  alpha: number;
  /**
   * Standard deviation of the normal mixture over the difference: the effect size the test is most
   * sensitive to (0.02: two points of agreement). Validity does not depend on it; speed does.
   */
  tau: number;
}

export const DEFAULT_SEQUENTIAL: SequentialOptions = { alpha: 0.05, tau: 0.02 };

/** A rate kept off 0 and 1 (by half a count) so a perfect arm still has a variance. */
const rate = (a: ArmCounts): number => Math.min(1 - 0.5 / a.n, Math.max(0.5 / a.n, a.successes / a.n));

/**
 * The difference candidate − control with its (1 − α) confidence-sequence interval at this look, and the
 * always-valid p-value of "no difference" at this look (take the running minimum over looks).
 */
export function compareArms(control: ArmCounts, candidate: ArmCounts, o: SequentialOptions = DEFAULT_SEQUENTIAL): { estimate: number; interval: [number, number]; p: number } | undefined {
  if (control.n === 0 || candidate.n === 0) return undefined;
  const pa = rate(control), pb = rate(candidate);
  const estimate = candidate.successes / candidate.n - control.successes / control.n;
  const v = (pa * (1 - pa)) / control.n + (pb * (1 - pb)) / candidate.n;
  const t2 = o.tau * o.tau;
  // Λ(θ) = sqrt(V/(V+τ²)) · exp(τ²(Δ̂−θ)² / (2V(V+τ²))); the interval is every θ with Λ(θ) < 1/α.
  const half = Math.sqrt(((v * (v + t2)) / t2) * (2 * Math.log(1 / o.alpha) + Math.log((v + t2) / v)));
  const logLambda0 = 0.5 * Math.log(v / (v + t2)) + (t2 * estimate * estimate) / (2 * v * (v + t2));
  return { estimate, interval: [estimate - half, estimate + half], p: Math.min(1, Math.exp(-logLambda0)) };
}

export type RolloutDecision = 'promote' | 'rollback' | 'continue';

export interface RolloutVerdict {
  decision: RolloutDecision;
  estimate: number | null;
  /** The running intersection of the intervals seen so far (still a valid confidence sequence, and narrower). */
  interval: [number, number] | null;
  why: string;
}

/**
 * Promote once the candidate is surely no worse than `margin` below the control (non-inferiority; margin 0:
 * surely better); roll back once it is surely worse than that; otherwise continue. Neither before every
 * arm has `minPerArm` outcomes: the normal approximation needs them.
 */
export function rolloutVerdict(
  control: ArmCounts, candidate: ArmCounts,
  o: SequentialOptions & { margin: number; minPerArm: number; previous?: [number, number] | null },
): RolloutVerdict {
  const c = compareArms(control, candidate, o);
  if (!c) return { decision: 'continue', estimate: null, interval: o.previous ?? null, why: 'no outcomes in an arm yet' };
  const interval: [number, number] = o.previous ? [Math.max(o.previous[0], c.interval[0]), Math.min(o.previous[1], c.interval[1])] : c.interval;
  const at = `difference ${fmt(c.estimate)}, ${(1 - o.alpha) * 100}% confidence sequence [${fmt(interval[0])}, ${fmt(interval[1])}]`;
  if (Math.min(control.n, candidate.n) < o.minPerArm) return { decision: 'continue', estimate: c.estimate, interval, why: `${at}; waiting for ${o.minPerArm} outcomes per arm` };
  if (interval[0] > -o.margin) return { decision: 'promote', estimate: c.estimate, interval, why: `${at}: the candidate is no worse than ${fmt(o.margin)} below the control` };
  if (interval[1] < -o.margin) return { decision: 'rollback', estimate: c.estimate, interval, why: `${at}: the candidate is worse than the control by more than ${fmt(o.margin)}` };
  return { decision: 'continue', estimate: c.estimate, interval, why: `${at}: not settled yet` };
}

const fmt = (x: number): string => (x >= 0 ? `+${x.toFixed(4)}` : x.toFixed(4));

/** The fixed-sample two-proportion z-test's p-value: what checking after every batch must not use (the bench shows why). */
export function naiveZTestP(control: ArmCounts, candidate: ArmCounts): number {
  const pooled = (control.successes + candidate.successes) / (control.n + candidate.n);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / candidate.n));
  if (!(se > 0)) return 1;
  const z = Math.abs(candidate.successes / candidate.n - control.successes / control.n) / se;
  return 2 * normalSurvival(z);
}

/** P(Z ≥ z) for a standard normal (Abramowitz–Stegun 7.1.26 via erfc; absolute error < 1.5e-7). */
export function normalSurvival(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erfc = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-x * x);
  return z >= 0 ? erfc / 2 : 1 - erfc / 2;
}
