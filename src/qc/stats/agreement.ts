/**
 * Chance-corrected agreement over many items, computed per batch.
 * Both take, per item, the category each rater chose (missing raters simply absent).
 */

/**
 * Fleiss' kappa from per-item category counts. Items may have different numbers of raters; items with fewer
 * than two cannot show agreement and are skipped. With a constant number of raters this is Fleiss (1971).
 * Returns undefined when no item has two raters or expected agreement is perfect.
 */
export function fleissKappa(counts: number[][]): number | undefined {
  const items = counts.filter((row) => row.reduce((a, b) => a + b, 0) >= 2);
  if (items.length === 0) return undefined;
  const k = items[0]!.length;
  const totals = new Array<number>(k).fill(0);
  let ratings = 0;
  let pSum = 0;
  for (const row of items) {
    const n = row.reduce((a, b) => a + b, 0);
    let sq = 0;
    row.forEach((c, j) => { sq += c * c; totals[j] = totals[j]! + c; });
    ratings += n;
    pSum += (sq - n) / (n * (n - 1));
  }
  const pBar = pSum / items.length;
  const pe = totals.reduce((a, t) => a + (t / ratings) ** 2, 0);
  if (pe >= 1) return undefined;
  return (pBar - pe) / (1 - pe);
}

/** Tallies category choices per item into the count matrix fleissKappa takes, over a fixed category order. */
export function categoryCounts(items: string[][], categories: string[]): number[][] {
  const index = new Map(categories.map((c, i) => [c, i]));
  return items.map((values) => {
    const row = new Array<number>(categories.length).fill(0);
    for (const v of values) {
      const i = index.get(v);
      if (i !== undefined) row[i]! += 1;
    }
    return row;
  });
}

/**
 * Krippendorff's alpha for nominal data with missing values (Krippendorff 2011, "Computing Krippendorff's
 * Alpha-Reliability"): α = 1 − D_o/D_e over the coincidence matrix of pairable values. Units with fewer than
 * two values are not pairable and drop out. Returns undefined when there is no variation to measure.
 */
export function krippendorffAlphaNominal(units: Array<Array<string | number>>): number | undefined {
  const coincidence = new Map<string, number>();
  const marginal = new Map<string, number>();
  let n = 0;
  for (const unit of units) {
    const m = unit.length;
    if (m < 2) continue;
    const counts = new Map<string, number>();
    for (const v of unit) counts.set(String(v), (counts.get(String(v)) ?? 0) + 1);
    for (const [c, nc] of counts) {
      for (const [k, nk] of counts) {
        // Pairs of a value with itself exclude the value's own slot.
        const pairs = c === k ? nc * (nc - 1) : nc * nk;
        const key = `${c}\u0000${k}`;
        coincidence.set(key, (coincidence.get(key) ?? 0) + pairs / (m - 1));
      }
      marginal.set(c, (marginal.get(c) ?? 0) + nc);
    }
    n += m;
  }
  if (n < 2) return undefined;
  let observedDisagreement = 0;
  for (const [key, o] of coincidence) {
    const [c, k] = key.split('\u0000');
    if (c !== k) observedDisagreement += o;
  }
  let expectedDisagreement = 0;
  const values = [...marginal.entries()];
  for (const [c, nc] of values) for (const [k, nk] of values) if (c !== k) expectedDisagreement += nc * nk;
  if (expectedDisagreement === 0) return undefined;
  return 1 - (n - 1) * (observedDisagreement / expectedDisagreement);
}
