import { createHash } from 'node:crypto';
import type { Finding } from './findings';
import type { QcPolicy } from './policy';
import { ksTwoSample, type KsResult } from './stats/ks';
import { histogramQuantile, leastSquaresSlope, timeBin, TIME_BIN_COUNT } from './stats/trend';

/** The subject of the project's whole stream (every other subject is an annotator id). */
export const STREAM = '*';

/** One batch's contribution to one subject's series; windows are sums of the newest buckets. */
export interface Bucket {
  n: number;
  l1Failed: number;
  l2Compared: number;
  l2Agreed: number;
  l3N: number;
  l3Sum: number;
  /** A bounded sample of the layer-3 scores (for the KS test). */
  l3Scores: number[];
  timeHist: number[];
  /** When its samples were labelled: the newest annotation's submittedAt (the batch's processing time when none has one). */
  dataTime: Date;
}

export interface BatchSampleQuality {
  id: string;
  l1Passed: boolean;
  /** Layer-2 agreement of the sample (absent when layer 2 did not run). */
  l2Score: number | null;
  l3Score: number | null;
  annotations: Array<{ annotator: string; durationMs?: number; submittedAt?: Date }>;
}

/** Scores kept per bucket for the KS test; enough for its power, small enough to read many buckets cheaply. */
export const SCORE_SAMPLE_CAP = 256;

const emptyBucket = (dataTime: Date): Bucket => ({ n: 0, l1Failed: 0, l2Compared: 0, l2Agreed: 0, l3N: 0, l3Sum: 0, l3Scores: [], timeHist: new Array(TIME_BIN_COUNT).fill(0), dataTime });

const rank = (id: string): string => createHash('sha1').update(id).digest('hex');

/**
 * This batch's bucket for the stream and for each annotator. An annotator's layer-2 numbers are their own
 * label-vs-consensus counts (`agreementByAnnotator`); the stream's are the samples' agreement scores.
 */
export function bucketsForBatch(samples: BatchSampleQuality[], agreementByAnnotator: Map<string, { compared: number; agreed: number }>, now: Date): Map<string, Bucket> {
  const out = new Map<string, Bucket>();
  const scoreIds = new Map<string, Array<{ id: string; score: number }>>();
  const get = (subject: string): Bucket => {
    let b = out.get(subject);
    if (!b) out.set(subject, (b = { ...emptyBucket(now), dataTime: new Date(0) }));
    return b;
  };
  const labelled = (b: Bucket, at: Date | undefined): void => {
    if (at && at.getTime() > b.dataTime.getTime()) b.dataTime = at;
  };
  const add = (b: Bucket, subject: string, s: BatchSampleQuality): void => {
    b.n++;
    if (!s.l1Passed) b.l1Failed++;
    if (s.l3Score !== null) {
      b.l3N++;
      b.l3Sum += s.l3Score;
      let list = scoreIds.get(subject);
      if (!list) scoreIds.set(subject, (list = []));
      list.push({ id: s.id, score: s.l3Score });
    }
  };
  for (const s of samples) {
    const stream = get(STREAM);
    add(stream, STREAM, s);
    if (s.l2Score !== null) {
      stream.l2Compared++;
      stream.l2Agreed += s.l2Score;
    }
    for (const annotator of new Set(s.annotations.map((a) => a.annotator))) add(get(annotator), annotator, s);
    for (const a of s.annotations) {
      labelled(stream, a.submittedAt);
      labelled(get(a.annotator), a.submittedAt);
      if (a.durationMs === undefined || !Number.isFinite(a.durationMs)) continue;
      const bin = timeBin(a.durationMs);
      stream.timeHist[bin]!++;
      get(a.annotator).timeHist[bin]!++;
    }
  }
  for (const b of out.values()) if (b.dataTime.getTime() === 0) b.dataTime = now;
  for (const [annotator, c] of agreementByAnnotator) {
    const b = out.get(annotator);
    if (b) {
      b.l2Compared += c.compared;
      b.l2Agreed += c.agreed;
    }
  }
  // A hash-ordered prefix is a uniform sample that a retry reproduces exactly.
  for (const [subject, list] of scoreIds) {
    out.get(subject)!.l3Scores = list.sort((a, b) => (rank(a.id) < rank(b.id) ? -1 : 1)).slice(0, SCORE_SAMPLE_CAP).map((x) => x.score);
  }
  return out;
}

export interface WindowStats {
  samples: number;
  buckets: number;
  l1FailureRate: number | null;
  l2Agreement: number | null;
  l3MeanScore: number | null;
  annotationTimeP50: number | null;
  annotationTimeP95: number | null;
}

export function windowStats(buckets: Bucket[]): WindowStats {
  const sum = (f: (b: Bucket) => number): number => buckets.reduce((s, b) => s + f(b), 0);
  const n = sum((b) => b.n);
  const hist = new Array<number>(TIME_BIN_COUNT).fill(0);
  for (const b of buckets) b.timeHist.forEach((c, i) => { hist[i]! += c; });
  const l2c = sum((b) => b.l2Compared);
  const l3n = sum((b) => b.l3N);
  return {
    samples: n,
    buckets: buckets.length,
    l1FailureRate: n ? sum((b) => b.l1Failed) / n : null,
    l2Agreement: l2c ? sum((b) => b.l2Agreed) / l2c : null,
    l3MeanScore: l3n ? sum((b) => b.l3Sum) / l3n : null,
    annotationTimeP50: histogramQuantile(hist, 0.5),
    annotationTimeP95: histogramQuantile(hist, 0.95),
  };
}

type Layer4Policy = QcPolicy['layer4'];

/**
 * Whether a bucket belongs to a window of `size` samples (count) or seconds (time), given the samples of the
 * newer buckets before it. The one rule for both splitting windows and deciding how far back to read.
 */
export function inWindow(kind: Layer4Policy['window']['kind'], size: number, newerSamples: number, dataTime: Date, newest: Date): boolean {
  return kind === 'count' ? newerSamples < size : newest.getTime() - dataTime.getTime() <= size * 1000;
}

/**
 * Splits a subject's newest-first buckets into the short window and the reference (the rest of the long
 * window). Buckets are whole batches: a window takes the newest batches until it holds `short` (`long`)
 * samples, or, for time windows, the batches of the last `short` (`long`) seconds.
 */
export function splitWindows(newestFirst: Bucket[], w: Layer4Policy['window'], now: Date = newestFirst[0]?.dataTime ?? new Date()): { short: Bucket[]; reference: Bucket[]; exhausted: boolean } {
  const short: Bucket[] = [];
  const reference: Bucket[] = [];
  let seen = 0;
  for (const b of newestFirst) {
    const inShort = inWindow(w.kind, w.short, seen, b.dataTime, now);
    if (!inWindow(w.kind, w.long, seen, b.dataTime, now)) return { short, reference, exhausted: true };
    (inShort && reference.length === 0 ? short : reference).push(b);
    seen += b.n;
  }
  return { short, reference, exhausted: false };
}

export type DecayMetric = keyof Layer4Policy['thresholds'];

export interface Breach {
  metric: DecayMetric;
  shortValue: number;
  referenceValue: number;
  /** How much worse the short window is, in the threshold's terms (absolute, or relative for time). */
  delta: number;
  threshold: number;
  slope: number | null;
}

export interface SubjectSummary {
  short: WindowStats;
  reference: WindowStats;
  /** Per-bucket trend over the long window, oldest to newest, for each metric. */
  slopes: Record<'l1FailureRate' | 'l2Agreement' | 'l3MeanScore' | 'annotationTimeP50', number | null>;
  ks: KsResult | null;
  /** 1 − D·(1 − p): 1 when the recent scores look like the reference, lower the larger and surer the shift. */
  stability: number;
  breaches: Breach[];
  /**
   * The data time the short window starts after (the newest reference bucket's): an alert is about the
   * annotator's work since then, so their samples labelled before it are not judged by it.
   */
  recentSince?: string;
  /** Why nothing was compared, when nothing was. */
  note?: string;
}

/** Worse-by amounts per metric: failure rate up, agreement and score down, annotation time down (relative: rushing). */
const WORSE: Record<DecayMetric, (short: number, ref: number) => number> = {
  l1FailureRate: (s, r) => s - r,
  l2Agreement: (s, r) => r - s,
  l3MeanScore: (s, r) => r - s,
  annotationTimeP50: (s, r) => (r > 0 ? (r - s) / r : 0),
};

/** Windows are measured back from the subject's newest data (see Bucket.dataTime), not from the wall clock. */
export function evaluateSubject(newestFirst: Bucket[], policy: Layer4Policy): SubjectSummary {
  const { short, reference } = splitWindows(newestFirst, policy.window);
  const s = windowStats(short);
  const r = windowStats(reference);
  const oldestFirst = [...short, ...reference].reverse();
  const perBucket = oldestFirst.map((b) => windowStats([b]));
  const slope = (f: (w: WindowStats) => number | null): number | null => {
    const pts = perBucket.map(f).map((y, x) => ({ x, y })).filter((p): p is { x: number; y: number } => p.y !== null);
    return leastSquaresSlope(pts.map((p) => p.y), pts.map((p) => p.x));
  };
  const out: SubjectSummary = {
    short: s, reference: r, ...(reference[0] ? { recentSince: reference[0].dataTime.toISOString() } : {}),
    slopes: { l1FailureRate: slope((w) => w.l1FailureRate), l2Agreement: slope((w) => w.l2Agreement), l3MeanScore: slope((w) => w.l3MeanScore), annotationTimeP50: slope((w) => w.annotationTimeP50) },
    ks: null, stability: 1, breaches: [],
  };
  if (s.samples < policy.minReference || r.samples < policy.minReference) {
    out.note = `not compared: short window ${s.samples} and reference ${r.samples} samples, at least ${policy.minReference} each needed`;
    return out;
  }
  for (const metric of Object.keys(WORSE) as DecayMetric[]) {
    const sv = s[metric];
    const rv = r[metric];
    if (sv === null || rv === null) continue;
    const delta = WORSE[metric](sv, rv);
    if (delta > policy.thresholds[metric]) out.breaches.push({ metric, shortValue: sv, referenceValue: rv, delta, threshold: policy.thresholds[metric], slope: out.slopes[metric] });
  }
  const recent = short.flatMap((b) => b.l3Scores);
  const ref = reference.flatMap((b) => b.l3Scores);
  if (recent.length >= policy.minReference && ref.length >= policy.minReference) {
    out.ks = ksTwoSample(recent, ref);
    out.stability = 1 - out.ks.d * (1 - out.ks.p);
  }
  return out;
}

/** Layer 4's verdict on one sample: the stream's stability and the alerts on its annotators. */
/**
 * Layer 4's verdict on one sample: alerts of its annotators whose work on it falls in the alert's recent
 * window (an annotation without submittedAt always does), the stream's alerts, and a score shift.
 */
export function sampleDecayFindings(
  stream: SubjectSummary, alerted: Map<string, Breach[]>, annotations: Array<{ annotator: string; submittedAt?: Date }>, recentSince: Map<string, string | undefined> = new Map(),
): { passed: boolean; findings: Finding[]; alertedAnnotators: string[] } {
  const findings: Finding[] = [];
  const recent = (a: { annotator: string; submittedAt?: Date }): boolean => {
    const since = recentSince.get(a.annotator);
    return !since || !a.submittedAt || a.submittedAt.getTime() > Date.parse(since);
  };
  const alertedAnnotators = [...new Set(annotations.filter((a) => alerted.has(a.annotator) && recent(a)).map((a) => a.annotator))].sort();
  for (const a of alertedAnnotators) {
    for (const b of alerted.get(a)!) {
      findings.push({ layer: 4, pointer: '', rule: 'layer4.annotator_alert', annotators: [a], message: `${a}: ${b.metric} ${b.shortValue.toFixed(3)} recently vs ${b.referenceValue.toFixed(3)} before (worse by ${b.delta.toFixed(3)}, threshold ${b.threshold})` });
    }
  }
  for (const b of alerted.get(STREAM) ?? []) {
    findings.push({ layer: 4, pointer: '', rule: 'layer4.stream_alert', message: `project stream: ${b.metric} ${b.shortValue.toFixed(3)} recently vs ${b.referenceValue.toFixed(3)} before` });
  }
  if (stream.ks && stream.stability < 0.8) {
    findings.push({ layer: 4, pointer: '', rule: 'layer4.score_shift', message: `recent layer-3 scores differ from the reference (KS D=${stream.ks.d.toFixed(3)}, p=${stream.ks.p.toExponential(2)}); stability ${stream.stability.toFixed(3)}` });
  }
  return { passed: findings.length === 0, findings, alertedAnnotators };
}
