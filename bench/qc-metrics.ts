/** Scoring a QC run against known truth: pure functions the QC benchmark (and its unit test) use. */

/** Area under the ROC curve of `score` for the positives (ties count half): the chance a random positive outranks a random negative. */
export function auroc(score: number[], positive: boolean[]): number {
  const idx = score.map((s, i) => i).sort((a, b) => score[a]! - score[b]!);
  let rankSum = 0;
  let pos = 0;
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && score[idx[j + 1]!] === score[idx[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (positive[idx[k]!]) { rankSum += avgRank; pos++; }
    i = j + 1;
  }
  const neg = score.length - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** Expected calibration error over `bins` equal-width bins of the predicted probability, and the table behind it. */
export function calibration(predicted: number[], observed: boolean[], bins = 10): { ece: number; table: Array<{ from: number; to: number; n: number; predicted: number; observed: number }> } {
  const table = Array.from({ length: bins }, (_, b) => ({ from: b / bins, to: (b + 1) / bins, n: 0, predicted: 0, observed: 0 }));
  predicted.forEach((p, i) => {
    const t = table[Math.min(bins - 1, Math.floor(p * bins))]!;
    t.n++;
    t.predicted += p;
    t.observed += observed[i] ? 1 : 0;
  });
  let ece = 0;
  for (const t of table) {
    if (t.n === 0) continue;
    t.predicted /= t.n;
    t.observed /= t.n;
    ece += (t.n / predicted.length) * Math.abs(t.predicted - t.observed);
  }
  return { ece, table: table.filter((t) => t.n > 0).map((t) => ({ ...t, predicted: +t.predicted.toFixed(4), observed: +t.observed.toFixed(4) })) };
}

/** The most samples (ranked safest first) acceptable with at most `maxErrorRate` of them wrong, as a share of all. */
export function coverageAtErrorRate(risk: number[], wrong: boolean[], maxErrorRate: number): number {
  const idx = risk.map((_, i) => i).sort((a, b) => risk[a]! - risk[b]!);
  let errors = 0;
  let best = 0;
  idx.forEach((i, k) => {
    if (wrong[i]) errors++;
    if (errors <= maxErrorRate * (k + 1)) best = k + 1;
  });
  return risk.length ? best / risk.length : 0;
}

/** Majority vote with ties to the first value given. */
export function majorityVote(votes: string[]): string {
  const n = new Map<string, number>();
  for (const v of votes) n.set(v, (n.get(v) ?? 0) + 1);
  let best = votes[0]!;
  for (const [v, c] of n) if (c > n.get(best)!) best = v;
  return best;
}
