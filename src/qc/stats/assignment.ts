/**
 * Optimal assignment (Hungarian / Kuhn–Munkres with potentials, O(n²m)) on a rectangular cost matrix.
 * Greedy matching by best IoU first can pair the wrong objects when boxes overlap several others;
 * the optimal assignment minimises total cost over all pairings instead.
 *
 * Returns, for each row, the column assigned to it or -1. Every row gets a column when rows ≤ columns.
 */
export function minCostAssignment(cost: number[][]): number[] {
  const n = cost.length;
  if (n === 0) return [];
  const m = cost[0]!.length;
  if (m === 0) return new Array<number>(n).fill(-1);
  if (n > m) {
    // The algorithm needs rows ≤ columns: solve the transpose and invert the answer.
    const t = Array.from({ length: m }, (_, j) => Array.from({ length: n }, (_, i) => cost[i]![j]!));
    const colToRow = minCostAssignment(t);
    const out = new Array<number>(n).fill(-1);
    colToRow.forEach((row, col) => { if (row >= 0) out[row] = col; });
    return out;
  }
  // 1-based arrays with a sentinel column 0, as in the classic e-maxx formulation.
  const u = new Float64Array(n + 1);
  const v = new Float64Array(m + 1);
  const p = new Int32Array(m + 1);
  const way = new Int32Array(m + 1);
  const minv = new Float64Array(m + 1);
  const used = new Uint8Array(m + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0]!;
      let delta = Infinity;
      let j1 = 0;
      const row = cost[i0 - 1]!;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = row[j - 1]! - u[i0]! - v[j]!;
        if (cur < minv[j]!) { minv[j] = cur; way[j] = j0; }
        if (minv[j]! < delta) { delta = minv[j]!; j1 = j; }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) { u[p[j]!] = u[p[j]!]! + delta; v[j] = v[j]! - delta; } else { minv[j] = minv[j]! - delta; }
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0]!;
      p[j0] = p[j1]!;
      j0 = j1;
    } while (j0 !== 0);
  }
  const out = new Array<number>(n).fill(-1);
  for (let j = 1; j <= m; j++) if (p[j]! > 0) out[p[j]! - 1] = j - 1;
  return out;
}

/** Pairs rows and columns to maximise total similarity, dropping pairs whose similarity is below `min`. */
export function matchBySimilarity(similarity: number[][], min: number): Array<[number, number]> {
  // Below-threshold pairs are worth nothing, so the optimum never trades a valid match for one of them.
  const assigned = minCostAssignment(similarity.map((row) => row.map((s) => (s >= min ? -s : 0))));
  const pairs: Array<[number, number]> = [];
  assigned.forEach((j, i) => { if (j >= 0 && similarity[i]![j]! >= min) pairs.push([i, j]); });
  return pairs;
}
