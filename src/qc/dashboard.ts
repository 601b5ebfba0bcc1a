import { histogramQuantile } from './stats/trend';

/**
 * What a project's quality dashboard draws, from layer 4's buckets and the review tables: pure, so the
 * page only draws and the tests check the numbers.
 */

/** One subject's bucket (an annotator's work in one batch, or the stream's), with its data time. */
export interface QualityBucket {
  subject: string;
  batchId: string;
  dataTime: Date;
  n: number;
  l2Compared: number;
  l2Agreed: number;
  l3N: number;
  l3Sum: number;
  timeHist: number[];
}

export interface HeatmapCell {
  /** Labels compared; 0: the annotator did nothing in this window. */
  compared: number;
  /** Share of the annotator's labels that agreed with the consensus; null when none were compared. */
  agreement: number | null;
  /** Median annotation time in ms; null without timings. */
  medianMs: number | null;
}

export interface QualityHeatmap {
  /** Window starts, oldest first; the last window ends at `end`. */
  windows: Date[];
  end: Date | null;
  /** Annotators, most work first. */
  rows: Array<{ annotator: string; cells: HeatmapCell[] }>;
}

/**
 * Per-annotator agreement and speed in up to `columns` windows of data time (not processing order: a late
 * batch lands where its labels were made). Layer 4 keeps one bucket per subject and batch, its time the
 * subject's newest label in the batch, so a window is a run of whole batches ordered by their newest label,
 * about equally many per window: every annotator's work in a batch lands in the same column, and bursts
 * of batches do not leave most columns empty.
 */
export function qualityHeatmap(buckets: QualityBucket[], o: { stream: string; columns: number; maxRows: number }): QualityHeatmap {
  const work = buckets.filter((b) => b.subject !== o.stream);
  if (!work.length) return { windows: [], end: null, rows: [] };
  const batchTime = new Map<string, number>();
  for (const b of work) batchTime.set(b.batchId, Math.max(batchTime.get(b.batchId) ?? -Infinity, b.dataTime.getTime()));
  const order = [...batchTime.entries()].sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
  const columns = Math.min(o.columns, order.length);
  const colOf = new Map(order.map(([batch], i) => [batch, Math.floor((i * columns) / order.length)]));
  const starts = Array.from({ length: columns }, (_, c) => order.find(([batch]) => colOf.get(batch) === c)![1]);
  const col = (b: QualityBucket): number => colOf.get(b.batchId)!;
  const acc = new Map<string, Array<{ compared: number; agreed: number; hist: number[] }>>();
  for (const b of work) {
    const cells = acc.get(b.subject) ?? Array.from({ length: columns }, () => ({ compared: 0, agreed: 0, hist: [] as number[] }));
    acc.set(b.subject, cells);
    const c = cells[col(b)]!;
    c.compared += b.l2Compared;
    c.agreed += b.l2Agreed;
    b.timeHist.forEach((v, i) => { c.hist[i] = (c.hist[i] ?? 0) + v; });
  }
  const rows = [...acc.entries()]
    .map(([annotator, cells]) => ({ annotator, total: cells.reduce((s, c) => s + c.compared, 0), cells }))
    .sort((a, b) => b.total - a.total || a.annotator.localeCompare(b.annotator))
    .slice(0, o.maxRows)
    .map((r) => ({
      annotator: r.annotator,
      cells: r.cells.map((c) => ({ compared: c.compared, agreement: c.compared > 0 ? c.agreed / c.compared : null, medianMs: histogramQuantile(c.hist, 0.5) })),
    }));
  return { windows: starts.map((t) => new Date(t)), end: new Date(order[order.length - 1]![1]), rows };
}

/** The stream's agreement and mean layer-3 score per bucket, oldest first: the line of the stream's health. */
export function streamSeries(buckets: QualityBucket[], stream: string): Array<{ at: Date; agreement: number | null; meanScore: number | null; n: number }> {
  return buckets.filter((b) => b.subject === stream)
    .sort((a, b) => a.dataTime.getTime() - b.dataTime.getTime())
    .map((b) => ({ at: b.dataTime, agreement: b.l2Compared > 0 ? b.l2Agreed / b.l2Compared : null, meanScore: b.l3N > 0 ? b.l3Sum / b.l3N : null, n: b.n }));
}

/** Open review tasks by how long they have waited. */
export const AGE_BANDS: Array<{ label: string; maxSeconds: number }> = [
  { label: '< 1 h', maxSeconds: 3600 }, { label: '1–8 h', maxSeconds: 8 * 3600 }, { label: '8–24 h', maxSeconds: 86400 },
  { label: '1–3 d', maxSeconds: 3 * 86400 }, { label: '> 3 d', maxSeconds: Infinity },
];

export function ageBands(ageSeconds: number[]): number[] {
  const out = AGE_BANDS.map(() => 0);
  for (const a of ageSeconds) out[AGE_BANDS.findIndex((b) => a < b.maxSeconds)]!++;
  return out;
}
