import { matchBySimilarity } from '../stats/assignment';

/** One object (box or span) drawn by one annotator, with where it sits in that annotation. */
export interface Drawn<T> {
  annotator: string;
  /** Index of the annotation in the sample and of the object inside it, for JSON pointers. */
  annotation: number;
  index: number;
  item: T;
}

/** The objects several annotators drew for what the matcher takes to be one real object. */
export interface Cluster<T> {
  members: Drawn<T>[];
}

/**
 * Groups objects across annotators: annotators are taken one at a time and their objects are assigned
 * optimally (Hungarian) to the clusters built so far, compared with each cluster's current consensus;
 * pairs under `minSimilarity` stay apart and unmatched objects open new clusters. An annotator contributes
 * at most one object to a cluster.
 */
export function clusterAcrossAnnotators<T>(
  perAnnotation: Array<{ annotator: string; items: T[] }>,
  similarity: (a: T, b: T) => number,
  consensus: (members: T[]) => T,
  minSimilarity: number,
): Cluster<T>[] {
  const clusters: Array<{ members: Drawn<T>[]; centre: T }> = [];
  perAnnotation.forEach(({ annotator, items }, annotation) => {
    const drawn = items.map((item, index) => ({ annotator, annotation, index, item }));
    const sim = clusters.map((c) => drawn.map((d) => similarity(c.centre, d.item)));
    const pairs = clusters.length > 0 && drawn.length > 0 ? matchBySimilarity(sim, minSimilarity) : [];
    const taken = new Set<number>();
    for (const [ci, di] of pairs) {
      const c = clusters[ci]!;
      c.members.push(drawn[di]!);
      c.centre = consensus(c.members.map((m) => m.item));
      taken.add(di);
    }
    drawn.forEach((d, i) => { if (!taken.has(i)) clusters.push({ members: [d], centre: d.item }); });
  });
  return clusters.map((c) => ({ members: c.members }));
}

/** Median; the 1–3 element cases (the usual annotator counts) skip the sort, which dominated layer-2 time. */
export function median(xs: number[]): number {
  const n = xs.length;
  if (n === 1) return xs[0]!;
  if (n === 2) return (xs[0]! + xs[1]!) / 2;
  if (n === 3) {
    const [a, b, c] = xs as [number, number, number];
    return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
  }
  const s = Float64Array.from(xs).sort();
  const mid = n >> 1;
  return n % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export function iou(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x));
  const iy = Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));
  const inter = ix * iy;
  const union = a.w * a.h + b.w * b.h - inter;
  return union > 0 ? inter / union : a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h ? 1 : 0;
}

/** Per-coordinate median of the corners, so one stray annotator cannot drag the consensus box. */
export function medianBox(boxes: Box[]): Box {
  if (boxes.length === 1) return boxes[0]!;
  const xs: number[] = [];
  const ys: number[] = [];
  const x2s: number[] = [];
  const y2s: number[] = [];
  for (const b of boxes) {
    xs.push(b.x);
    ys.push(b.y);
    x2s.push(b.x + b.w);
    y2s.push(b.y + b.h);
  }
  const x1 = median(xs);
  const y1 = median(ys);
  return { x: x1, y: y1, w: Math.max(0, median(x2s) - x1), h: Math.max(0, median(y2s) - y1) };
}

/**
 * Weighted box fusion of matched boxes: corners averaged with the annotators' reliabilities as weights,
 * so every careful annotator's evidence counts (a median uses one box's corner and drops the rest).
 */
export function fuseBoxes(boxes: Box[], weights: number[]): Box {
  if (boxes.length === 1) return boxes[0]!;
  let sw = 0;
  let x1 = 0;
  let y1 = 0;
  let x2 = 0;
  let y2 = 0;
  boxes.forEach((b, i) => {
    const w = weights[i]! > 0 ? weights[i]! : 1e-6;
    sw += w;
    x1 += w * b.x;
    y1 += w * b.y;
    x2 += w * (b.x + b.w);
    y2 += w * (b.y + b.h);
  });
  return { x: x1 / sw, y: y1 / sw, w: Math.max(0, (x2 - x1) / sw), h: Math.max(0, (y2 - y1) / sw) };
}

/**
 * Whether two boxes are close enough to be two drawings of one object: of a like size (each side within
 * 3× of the other's) and overlapping, or centres within the larger diagonal. The size bound keeps a 10-px
 * car far down the road from being taken for a careless drawing of the bicycle on a camper next to it
 * (seen on a real street photo: the two fused into a box nobody drew).
 */
export function boxesNear(a: Box, b: Box): boolean {
  const like = (p: number, q: number) => Math.max(p, q) <= 3 * Math.max(1e-9, Math.min(p, q));
  if (!like(a.w, b.w) || !like(a.h, b.h)) return false;
  if (iou(a, b) > 0) return true;
  const d = Math.hypot(a.x + a.w / 2 - (b.x + b.w / 2), a.y + a.h / 2 - (b.y + b.h / 2));
  return d <= Math.max(Math.hypot(a.w, a.h), Math.hypot(b.w, b.h));
}

export interface Interval {
  start: number;
  end: number;
}

/** Overlap of half-open intervals as intersection over union (Jaccard) in whatever unit they are in. */
export function intervalIou(a: Interval, b: Interval): number {
  const inter = Math.max(0, Math.min(a.end, b.end) - Math.max(a.start, b.start));
  const union = Math.max(a.end, b.end) - Math.min(a.start, b.start);
  return union > 0 ? inter / union : 0;
}

export function medianInterval(xs: Interval[]): Interval {
  return { start: Math.round(median(xs.map((x) => x.start))), end: Math.round(median(xs.map((x) => x.end))) };
}

/** Whether two spans are two markings of one mention: overlapping, or the gap between them no longer than the longer one. */
export function intervalsNear(a: Interval, b: Interval): boolean {
  const gap = Math.max(a.start, b.start) - Math.min(a.end, b.end);
  return gap <= Math.max(a.end - a.start, b.end - b.start);
}

/**
 * Maps a character interval to the whitespace tokens it touches, so spans that differ only by a trailing
 * space or punctuation inside one token compare as equal in token mode.
 */
export function toTokenInterval(text: string, span: Interval): Interval {
  let first = -1;
  let last = -1;
  let t = 0;
  for (const m of text.matchAll(/\S+/g)) {
    const s = m.index;
    const e = s + m[0].length;
    if (e > span.start && s < span.end) {
      if (first < 0) first = t;
      last = t;
    }
    t++;
  }
  return first < 0 ? { start: span.start, end: span.start } : { start: first, end: last + 1 };
}
