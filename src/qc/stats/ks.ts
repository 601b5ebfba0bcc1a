/**
 * Two-sample Kolmogorov–Smirnov test. The statistic is kept as an integer, D·n·m = max |m·i − n·j| over the
 * merged sample path, so the exact p-value's "stays inside" test has no floating-point ties.
 */
export interface KsResult {
  d: number;
  p: number;
  method: 'exact' | 'asymptotic';
  n: number;
  m: number;
}

/** Exact p-values while n·m stays at or below this (an O(n·m) lattice walk); the asymptotic form beyond. */
export const EXACT_LIMIT = 10_000;

function statisticScaled(a: number[], b: number[]): number {
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  const n = x.length;
  const m = y.length;
  let i = 0;
  let j = 0;
  let best = 0;
  while (i < n && j < m) {
    const v = Math.min(x[i]!, y[j]!);
    // Ties step both samples past the value before the gap is measured.
    while (i < n && x[i] === v) i++;
    while (j < m && y[j] === v) j++;
    best = Math.max(best, Math.abs(i * m - j * n));
  }
  return best;
}

/** P(D ≥ d) under H0 for sizes n, m, with d given scaled as D·n·m: the share of monotone lattice paths that leave the band. */
export function exactPValue(n: number, m: number, dScaled: number): number {
  if (dScaled <= 0) return 1;
  // p[j] = probability that a uniformly random path to (i, j) stayed strictly inside |i·m − j·n| < dScaled.
  let prev = new Float64Array(m + 1);
  prev[0] = 1;
  for (let j = 1; j <= m; j++) prev[j] = Math.abs(j * n) < dScaled ? prev[j - 1]! : 0;
  for (let i = 1; i <= n; i++) {
    const cur = new Float64Array(m + 1);
    cur[0] = Math.abs(i * m) < dScaled ? prev[0]! : 0;
    for (let j = 1; j <= m; j++) {
      cur[j] = Math.abs(i * m - j * n) < dScaled ? (i / (i + j)) * prev[j]! + (j / (i + j)) * cur[j - 1]! : 0;
    }
    prev = cur;
  }
  return Math.min(1, Math.max(0, 1 - prev[m]!));
}

/** Kolmogorov's limiting survival function Q(λ) = 2 Σ_{k≥1} (−1)^{k−1} exp(−2k²λ²). */
export function kolmogorovQ(lambda: number): number {
  if (lambda < 0.2) return 1;
  let sum = 0;
  for (let k = 1; k <= 100; k++) {
    const term = (k % 2 ? 1 : -1) * Math.exp(-2 * k * k * lambda * lambda);
    sum += term;
    if (Math.abs(term) < 1e-12) break;
  }
  return Math.min(1, Math.max(0, 2 * sum));
}

/** Asymptotic p-value with Stephens' small-sample correction: λ = (√nₑ + 0.12 + 0.11/√nₑ)·D, nₑ = nm/(n+m). */
export function asymptoticPValue(n: number, m: number, d: number): number {
  const ne = Math.sqrt((n * m) / (n + m));
  return kolmogorovQ((ne + 0.12 + 0.11 / ne) * d);
}

export function ksTwoSample(a: number[], b: number[]): KsResult {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) throw new Error('ksTwoSample needs two non-empty samples');
  const scaled = statisticScaled(a, b);
  const d = scaled / (n * m);
  if (n * m <= EXACT_LIMIT) return { d, p: exactPValue(n, m, scaled), method: 'exact', n, m };
  return { d, p: asymptoticPValue(n, m, d), method: 'asymptotic', n, m };
}
