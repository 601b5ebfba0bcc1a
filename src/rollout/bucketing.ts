import { createHash } from 'node:crypto';

/**
 * Consistent bucketing for gray releases: a unit (a sample id) lands at a fixed point in [0, 1) for a
 * given flag and salt — the same in every process and on every machine (sha256, no state) — and arms take
 * consecutive ranges from 0 up. Raising the treatment share from 10% to 25% therefore keeps every unit
 * that was treated at 10% treated: the range only grows. A new salt reshuffles everyone (a fresh experiment).
 */

/** The unit's point in [0, 1): the first 52 bits of sha256(flag ␟ salt ␟ unit). */
export function bucketOf(flag: string, salt: string, unit: string): number {
  const h = createHash('sha256').update(`${flag}\u001f${salt}\u001f${unit}`).digest();
  // 52 bits: exact in a double, so the point is the same wherever it is computed.
  return (h.readUInt32BE(0) * 2 ** 20 + (h.readUInt32BE(4) >>> 12)) / 2 ** 52;
}

export interface Arm {
  variant: string;
  /** Share of units, in [0, 1]; shares of a split sum to 1. */
  share: number;
}

/** The arm whose cumulative range holds `point`, arms in the order given (treatment first keeps ramps monotone). */
export function armAt(arms: Arm[], point: number): string {
  let upTo = 0;
  for (const a of arms) {
    upTo += a.share;
    if (point < upTo) return a.variant;
  }
  return arms[arms.length - 1]!.variant;
}

/** A split's problem, or undefined: shares in [0, 1] summing to 1, distinct variants. */
export function splitProblem(arms: Arm[]): string | undefined {
  if (arms.length === 0) return 'a split needs at least one arm';
  if (new Set(arms.map((a) => a.variant)).size !== arms.length) return 'variants of a split must be distinct';
  if (arms.some((a) => !(a.share >= 0 && a.share <= 1))) return 'each share must be between 0 and 1';
  const total = arms.reduce((s, a) => s + a.share, 0);
  if (Math.abs(total - 1) > 1e-9) return `shares must sum to 1, not ${total}`;
  return undefined;
}

/** Pearson's chi-square statistic and its p-value for observed counts against expected shares. */
export function chiSquare(observed: number[], shares: number[]): { statistic: number; df: number; p: number } {
  const n = observed.reduce((a, b) => a + b, 0);
  let statistic = 0;
  let df = -1;
  observed.forEach((o, i) => {
    const e = n * shares[i]!;
    if (e > 0) {
      statistic += (o - e) ** 2 / e;
      df++;
    }
  });
  return { statistic, df: Math.max(df, 1), p: chiSquareSurvival(statistic, Math.max(df, 1)) };
}

/** P(X ≥ x) for X ~ χ²(k): the regularised upper incomplete gamma Q(k/2, x/2). */
export function chiSquareSurvival(x: number, k: number): number {
  if (x <= 0) return 1;
  return upperGammaQ(k / 2, x / 2);
}

function logGamma(z: number): number {
  // Lanczos (g = 7, n = 9): ~15 significant digits for z > 0.
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - logGamma(1 - z);
  const x = z - 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Q(a, x) by the series (x < a + 1) or the continued fraction (otherwise), Numerical Recipes §6.2. */
function upperGammaQ(a: number, x: number): number {
  const gln = logGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let del = sum;
    for (let ap = a, i = 0; i < 1000; i++) {
      ap++;
      del *= x / ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * 1e-15) break;
    }
    return Math.max(0, 1 - sum * Math.exp(-x + a * Math.log(x) - gln));
  }
  let b = x + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(-x + a * Math.log(x) - gln) * h;
}
