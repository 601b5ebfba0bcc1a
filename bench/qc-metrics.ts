/** Scoring a QC run against known truth: pure functions the QC benchmark uses (calibration lives in src/qc/stats). */

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
