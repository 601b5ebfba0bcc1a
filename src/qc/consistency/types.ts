import type { Labels } from '../../ingest/envelope';
import type { Finding } from '../findings';
import type { FieldRisk } from '../risk';

export interface AnnotatorLabels {
  annotator: string;
  labels: Labels;
}

/** How often one annotator's labels matched the consensus in one sample (or one batch, summed). */
export interface AgreementTally {
  compared: number;
  agreed: number;
}

export type Tallies = Record<string, AgreementTally>;

/** One comparison for `annotator`; `agreed` 0.5 is an even split, where either side is as likely right. */
export function tally(t: Tallies, annotator: string, agreed: boolean | 0.5): void {
  const x = (t[annotator] ??= { compared: 0, agreed: 0 });
  x.compared++;
  x.agreed += agreed === 0.5 ? 0.5 : agreed ? 1 : 0;
}

/** What one label kind's check returns; the sample's layer-2 result merges these. */
export interface KindResult<C> {
  findings: Finding[];
  consensus: C | undefined;
  tallies: Tallies;
  /** Probability that each consensus field is wrong (see src/qc/risk.ts). */
  risks: FieldRisk[];
  /** Objects: per annotator, how often they drew what the consensus keeps and left out what it drops. */
  existence?: Tallies;
  /** Objects several drew: per annotator, how often the class they gave it is the consensus class. */
  classes?: Tallies;
  /** Objects voted on exact bounds (spans) that several drew: per annotator, how often theirs are the consensus bounds. */
  bounds?: Tallies;
}

/** Quotes who said what, e.g. `ann-1: "cat", ann-2: "dog"`, for finding messages. */
export function said(pairs: Array<[string, unknown]>): string {
  return pairs.map(([a, v]) => `${a}: ${JSON.stringify(v)}`).join(', ');
}

/** Weighted vote; ties go to the value seen first so the result does not depend on hash order. */
export function weightedVote<V extends string>(votes: Array<{ annotator: string; value: V }>, weights: Record<string, number>): { value: V; share: number } {
  const score = new Map<V, number>();
  let total = 0;
  for (const v of votes) {
    const w = weights[v.annotator] ?? 1;
    score.set(v.value, (score.get(v.value) ?? 0) + w);
    total += w;
  }
  let best: V = votes[0]!.value;
  for (const [value, s] of score) if (s > score.get(best)!) best = value;
  return { value: best, share: total > 0 ? score.get(best)! / total : 0 };
}

/** Weighted vote over arbitrary values compared by their JSON (so 1 and "1" differ); who voted otherwise. */
export function valueVote<V>(votes: Array<{ annotator: string; value: V }>, weights: Record<string, number>): { value: V; dissenters: string[] } {
  const key = (v: V): string => String(JSON.stringify(v));
  const top = weightedVote(votes.map((v) => ({ annotator: v.annotator, value: key(v.value) })), weights).value;
  return { value: votes.find((v) => key(v.value) === top)!.value, dissenters: votes.filter((v) => key(v.value) !== top).map((v) => v.annotator) };
}
