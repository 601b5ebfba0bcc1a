/**
 * Recalibration of layer 2's probability that a sample's labels are wrong, against what reviewers decided.
 * The annotator models (Dawid–Skene, one-coin) take errors as independent given the true label; real crowds
 * err together on hard items, so a 2–1 split of careful annotators is wrong far more often than those
 * models say (on CIFAR-10H's real votes, 12.6% against a predicted 1.3%), and which annotators split
 * says little about it. Platt scaling on the log-odds, logit p' = a + b·logit p, one line for contested
 * samples (some annotator's primary label disagrees with the consensus) and one for the rest, fitted to
 * decided reviews by maximum a posteriori with a prior centred on the identity (a = 0, b = 1), leaning
 * towards wrong by half the fit's own uncertainty. With no reviews the estimate stands as it is; every
 * review moves it towards what people found. Reviews picked by their risk (the uncertain) and at random
 * (the audit share) both serve: the fit models P(wrong | estimate), which choosing by the estimate does not bias.
 */

/** logit p' = a + b · logit p, with its own a and b for contested samples. */
export interface Line {
  a: number;
  b: number;
  /** Posterior covariance of (a, b) (Laplace): [var a, cov ab, var b]. */
  cov: [number, number, number];
}

export interface Recalibration {
  uncontested: Line;
  contested: Line;
  /** Decided reviews it was fitted on, and how many of them found the labels wrong. */
  reviews: number;
  overturned: number;
}

export const IDENTITY: Recalibration = { uncontested: { a: 0, b: 1, cov: [0, 0, 0] }, contested: { a: 0, b: 1, cov: [0, 0, 0] }, reviews: 0, overturned: 0 };
/**
 * How many posterior standard deviations the recalibrated log-odds lean towards wrong. Reviews come
 * mostly from samples already in doubt; where the fit extrapolates (a split the models call safe, which
 * nobody but the audit looks at) its slope is least known, and leaning there sends those samples to
 * people, whose decisions then teach the fit. On CIFAR-10H's real votes a plain fit (0) could settle
 * where it accepted 2–1 splits at 0.7% wrong; half a deviation kept every run under 0.35%.
 */
const PESSIMISM = 0.5;

/**
 * The prior, per line: centred on the identity, wide enough that a few hundred reviews decide, narrow
 * enough that ten do not. The slope is held nearer 1 than the offset: it stretches every estimate at once.
 */
const PRIOR_MEAN = [0, 1, 0, 1];
const PRIOR_SD = [2, 0.5, 2, 0.5];
const B_RANGE: [number, number] = [0.05, 3];
const EPS = 1e-7;

const clamp = (p: number): number => Math.min(1 - EPS, Math.max(EPS, p));
const logit = (p: number): number => Math.log(clamp(p) / (1 - clamp(p)));
const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/** The recalibrated probability, leaning PESSIMISM deviations towards wrong; the identity leaves p as it is. */
export function recalibrate(p: number, contested: boolean, r: Recalibration): number {
  if (r.reviews === 0) return p;
  const line = contested ? r.contested : r.uncontested;
  const x = logit(p);
  const sd = Math.sqrt(Math.max(0, line.cov[0] + 2 * x * line.cov[1] + x * x * line.cov[2]));
  return sigmoid(line.a + line.b * x + PESSIMISM * sd);
}

/**
 * One decided review: the estimate layer 5 had before recalibration, whether an annotator's primary label
 * disagreed with the consensus, and whether a person found the labels wrong.
 */
export interface ReviewedEstimate {
  p: number;
  contested: boolean;
  wrong: boolean;
}

/** Solves M x = v by Gaussian elimination with partial pivoting; undefined when M is singular. */
export function solveLinear(m: number[][], v: number[]): number[] | undefined {
  const n = v.length;
  const a = m.map((row, i) => [...row, v[i]!]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r]![col]!) > Math.abs(a[pivot]![col]!)) pivot = r;
    if (!(Math.abs(a[pivot]![col]!) > 1e-300)) return undefined;
    [a[col], a[pivot]] = [a[pivot]!, a[col]!];
    for (let r = col + 1; r < n; r++) {
      const f = a[r]![col]! / a[col]![col]!;
      for (let k = col; k <= n; k++) a[r]![k]! -= f * a[col]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = a[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= a[r]![k]! * x[k]!;
    x[r] = s / a[r]![r]!;
  }
  return x;
}

/** MAP fit by Newton's method (the log posterior is concave: logistic likelihood, Gaussian prior). */
export function fitRecalibration(rows: ReviewedEstimate[]): Recalibration {
  if (rows.length === 0) return IDENTITY;
  const overturned = rows.filter((r) => r.wrong).length;
  const features = rows.map((r) => (r.contested ? [0, 0, 1, logit(r.p)] : [1, logit(r.p), 0, 0]));
  const dim = PRIOR_MEAN.length;
  const z = (t: number[], f: number[]): number => t.reduce((s, x, j) => s + x * f[j]!, 0);
  const logPost = (t: number[]): number => rows.reduce((s, r, i) => {
    const zi = z(t, features[i]!);
    // log σ(z) and log(1 − σ(z)) without overflow.
    return s - (r.wrong ? Math.log1p(Math.exp(-zi)) : Math.log1p(Math.exp(zi)));
  }, -t.reduce((s, x, j) => s + (x - PRIOR_MEAN[j]!) ** 2 / (2 * PRIOR_SD[j]! ** 2), 0));
  let theta = [...PRIOR_MEAN];
  let hessian: number[][] = [];
  for (let iter = 0; iter < 100; iter++) {
    const g = theta.map((x, j) => -(x - PRIOR_MEAN[j]!) / PRIOR_SD[j]! ** 2);
    // The negative Hessian: positive definite.
    const h = theta.map((_, j) => theta.map((__, k) => (j === k ? 1 / PRIOR_SD[j]! ** 2 : 0)));
    rows.forEach((r, i) => {
      const f = features[i]!;
      const q = sigmoid(z(theta, f));
      const e = (r.wrong ? 1 : 0) - q;
      const w = q * (1 - q);
      for (let j = 0; j < dim; j++) {
        g[j]! += e * f[j]!;
        for (let k = 0; k < dim; k++) h[j]![k]! += w * f[j]! * f[k]!;
      }
    });
    hessian = h;
    const step = solveLinear(h, g);
    if (!step) break;
    // Newton step, halved until the posterior does not fall.
    const before = logPost(theta);
    let scale = 1;
    while (scale > 1e-4 && logPost(theta.map((x, j) => x + scale * step[j]!)) < before - 1e-12) scale /= 2;
    theta = theta.map((x, j) => x + scale * step[j]!);
    if (Math.max(...step.map((x) => Math.abs(scale * x))) < 1e-9) break;
  }
  const slope = (b: number): number => Math.min(B_RANGE[1], Math.max(B_RANGE[0], b));
  // The lines share no parameter: the Hessian is block diagonal, each 2 × 2 block inverted on its own.
  const cov = (j: number): [number, number, number] => {
    const [p, q, r] = [hessian[j]![j]!, hessian[j]![j + 1]!, hessian[j + 1]![j + 1]!];
    const det = p * r - q * q;
    return [r / det, -q / det, p / det];
  };
  return { uncontested: { a: theta[0]!, b: slope(theta[1]!), cov: cov(0) }, contested: { a: theta[2]!, b: slope(theta[3]!), cov: cov(2) }, reviews: rows.length, overturned };
}
