/** How well predicted probabilities match what happened: for layer 5's error estimate against reviewers and the QC benchmark's truth. */

export interface CalibrationBin {
  from: number;
  to: number;
  n: number;
  /** Mean predicted probability in the bin. */
  predicted: number;
  /** Share of the bin where the event happened. */
  observed: number;
}

/** Expected calibration error over `bins` equal-width bins of the predicted probability, and the table behind it. */
export function calibration(predicted: number[], observed: boolean[], bins = 10): { ece: number; table: CalibrationBin[] } {
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

