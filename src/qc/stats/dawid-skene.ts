/**
 * Dawid–Skene (1979) EM for annotator reliability: each annotator has a confusion matrix
 * π[a][true][given], the classes have a prior, and each item's true class is latent. Consensus is the
 * posterior argmax, so a careless or adversarial annotator's votes count for what their record shows.
 *
 * Runs incrementally: the soft counts from earlier batches come in as `prior` and act as pseudo-counts,
 * so each batch refines the project's matrices without rescanning its history.
 */

export interface ClassVote {
  annotator: string;
  label: number;
}

/** Accumulated soft counts: `confusion[a][t][g]` = expected times annotator a gave g when the truth was t. */
export interface ReliabilityCounts {
  classes: string[];
  classCounts: number[];
  confusion: Record<string, number[][]>;
}

export interface DawidSkeneFit {
  classes: string[];
  classPrior: number[];
  /** Row-normalised confusion matrices, per annotator seen in this batch. */
  confusion: Record<string, number[][]>;
  /** Posterior over the true class per item, in input order. */
  posteriors: number[][];
  iterations: number;
  /** Earlier counts plus this batch's expected counts: what to store for the next batch. */
  updated: ReliabilityCounts;
}

export interface DawidSkeneOptions {
  maxIterations?: number;
  tolerance?: number;
  /** Pseudo-count added to every confusion cell and class so unseen combinations never get probability 0. */
  smoothing?: number;
}

function zeros(k: number): number[][] {
  return Array.from({ length: k }, () => new Array<number>(k).fill(0));
}

/** Re-indexes stored counts onto this batch's class list (classes may have been added to the ontology since). */
function alignCounts(prior: ReliabilityCounts | undefined, classes: string[]): ReliabilityCounts {
  const out: ReliabilityCounts = { classes, classCounts: new Array<number>(classes.length).fill(0), confusion: {} };
  if (!prior) return out;
  const map = prior.classes.map((c) => classes.indexOf(c));
  prior.classCounts.forEach((n, i) => { if (map[i]! >= 0) out.classCounts[map[i]!]! += n; });
  for (const [a, m] of Object.entries(prior.confusion)) {
    const z = zeros(classes.length);
    m.forEach((row, t) => row.forEach((n, g) => { if (map[t]! >= 0 && map[g]! >= 0) z[map[t]!]![map[g]!]! += n; }));
    out.confusion[a] = z;
  }
  return out;
}

export function dawidSkene(items: ClassVote[][], classes: string[], prior?: ReliabilityCounts, opts: DawidSkeneOptions = {}): DawidSkeneFit {
  const k = classes.length;
  const maxIterations = opts.maxIterations ?? 100;
  const tolerance = opts.tolerance ?? 1e-6;
  const smoothing = opts.smoothing ?? 0.01;
  const base = alignCounts(prior, classes);
  const annotators = [...new Set(items.flatMap((votes) => votes.map((v) => v.annotator)))].sort();

  // Start from the stored matrices when there are any (E-step first), else from majority vote.
  const hasPrior = annotators.some((a) => base.confusion[a]);
  let classPrior = normalise(base.classCounts.map((n) => n + smoothing));
  let confusion = estimateConfusion(annotators, base, undefined, items, k, smoothing);
  let posteriors = hasPrior ? expectation(items, classPrior, confusion, k) : items.map((votes) => majority(votes, k));

  let iterations = 0;
  for (; iterations < maxIterations; iterations++) {
    classPrior = normalise(base.classCounts.map((n, t) => n + smoothing + posteriors.reduce((s, p) => s + p[t]!, 0)));
    confusion = estimateConfusion(annotators, base, posteriors, items, k, smoothing);
    const next = expectation(items, classPrior, confusion, k);
    let delta = 0;
    next.forEach((p, i) => p.forEach((x, t) => { delta = Math.max(delta, Math.abs(x - posteriors[i]![t]!)); }));
    posteriors = next;
    if (delta < tolerance) { iterations++; break; }
  }

  const updated: ReliabilityCounts = { classes, classCounts: [...base.classCounts], confusion: { ...base.confusion } };
  posteriors.forEach((p) => p.forEach((x, t) => { updated.classCounts[t]! += x; }));
  for (const a of annotators) updated.confusion[a] = (updated.confusion[a] ?? zeros(k)).map((row) => [...row]);
  items.forEach((votes, i) => votes.forEach((v) => {
    const m = updated.confusion[v.annotator]!;
    posteriors[i]!.forEach((x, t) => { m[t]![v.label]! += x; });
  }));
  return { classes, classPrior, confusion, posteriors, iterations, updated };
}

function normalise(xs: number[]): number[] {
  const s = xs.reduce((a, b) => a + b, 0);
  return s > 0 ? xs.map((x) => x / s) : xs.map(() => 1 / xs.length);
}

function majority(votes: ClassVote[], k: number): number[] {
  const p = new Array<number>(k).fill(0);
  for (const v of votes) p[v.label]! += 1;
  return votes.length > 0 ? p.map((x) => x / votes.length) : new Array<number>(k).fill(1 / k);
}

/** Pseudo-items of an annotator's overall accuracy that each row of their confusion matrix starts from. */
const ROW_PRIOR_ITEMS = 2;

/**
 * M-step. Each row starts from ROW_PRIOR_ITEMS pseudo-items of the annotator's own overall accuracy (a
 * one-coin row), so a class they have rarely or never seen as the truth inherits how careful they are in
 * general: a uniform row there made one vote for a new class outweigh two careful votes against it.
 */
function estimateConfusion(
  annotators: string[], base: ReliabilityCounts, posteriors: number[][] | undefined, items: ClassVote[][], k: number, smoothing: number,
): Record<string, number[][]> {
  const counts: Record<string, number[][]> = {};
  for (const a of annotators) counts[a] = (base.confusion[a] ?? zeros(k)).map((row) => [...row]);
  if (posteriors) {
    items.forEach((votes, i) => votes.forEach((v) => {
      const m = counts[v.annotator]!;
      posteriors[i]!.forEach((x, t) => { m[t]![v.label]! += x; });
    }));
  }
  for (const a of annotators) {
    const m = counts[a]!;
    const total = m.reduce((s, row) => s + row.reduce((x, y) => x + y, 0), 0);
    const right = m.reduce((s, row, t) => s + row[t]!, 0);
    const acc = Math.min(0.99, Math.max(1 / k + 0.01, total > 0 ? right / total : 0.8));
    counts[a] = m.map((row, t) => normalise(row.map((n, g) => n + smoothing + ROW_PRIOR_ITEMS * (g === t ? acc : (1 - acc) / Math.max(1, k - 1)))));
  }
  return counts;
}

/** Posterior of each item's true class given the votes, in log space so long vote lists cannot underflow. */
function expectation(items: ClassVote[][], classPrior: number[], confusion: Record<string, number[][]>, k: number): number[][] {
  return items.map((votes) => posterior(votes, classPrior, confusion, k));
}

export function posterior(votes: ClassVote[], classPrior: number[], confusion: Record<string, number[][]>, k: number): number[] {
  const logp = classPrior.map((p) => Math.log(p));
  for (const v of votes) {
    const m = confusion[v.annotator];
    for (let t = 0; t < k; t++) logp[t]! += Math.log(m ? m[t]![v.label]! : t === v.label ? 0.9 : 0.1 / Math.max(1, k - 1));
  }
  const max = Math.max(...logp);
  return normalise(logp.map((x) => Math.exp(x - max)));
}

/** An annotator's expected accuracy under their confusion matrix and the class prior. */
export function annotatorAccuracy(confusion: number[][], classPrior: number[]): number {
  return confusion.reduce((s, row, t) => s + classPrior[t]! * row[t]!, 0);
}

/**
 * A confusion matrix for judging single items: no off-diagonal cell rarer than the row's incidental error
 * spread evenly. A careful annotator's rare confusions are mostly unseen in a batch, and an unseen cell
 * estimated near 0 made one vote outweigh two others thousands to one: the posterior said 0.998 where the
 * truth went the other way about 1 time in 150. A systematic confusion (one label given for the class more
 * than 10% of the time and over three times the row's other errors spread evenly) is kept and not spread: a
 * swapper who gives cat for dog 60% of the time rarely gives anything else, and flooring with all their
 * error made those votes look random.
 */
export function flooredConfusion(confusion: number[][], classPrior: number[]): number[][] {
  const k = confusion.length;
  if (k < 2) return confusion;
  const overall = (1 - annotatorAccuracy(confusion, classPrior)) / (k - 1);
  return confusion.map((row, t) => {
    const err = 1 - row[t]!;
    const systematic = row.map((x, g) => g !== t && x > 0.1 && x > (3 * (err - x)) / Math.max(1, k - 2));
    const incidental = err - row.reduce((s, x, g) => s + (systematic[g] ? x : 0), 0);
    const others = k - 1 - systematic.filter(Boolean).length;
    // Rows without a systematic confusion keep the annotator-wide floor (steadier than one row's few items).
    const floor = systematic.some(Boolean) ? incidental / Math.max(1, others) : overall;
    return normalise(row.map((x, g) => (g === t || systematic[g] ? x : Math.max(x, floor))));
  });
}
