import { votePosterior } from '../risk';

/** One item: the values annotators gave for one field, and how many values the field can take (0: unknown). */
export interface OneCoinItem {
  k: number;
  votes: Array<{ annotator: string; value: string }>;
}

/**
 * Per-annotator accuracy under the one-coin model (right with probability acc, else uniformly one of the
 * other K − 1 values), by EM over a batch's items: what Dawid–Skene gives for classes, for fields with no
 * fixed value set (attributes). A Beta prior of `priorVotes` votes at `priorAccuracy` keeps annotators with
 * few votes near it, so one unlucky split does not make a careful annotator look careless.
 */
export function oneCoinAccuracies(items: OneCoinItem[], o: { iterations?: number; priorAccuracy?: number; priorVotes?: number } = {}): Record<string, number> {
  const prior = o.priorAccuracy ?? 0.85;
  const priorVotes = o.priorVotes ?? 4;
  const informative = items.filter((it) => it.votes.length >= 2);
  const annotators = [...new Set(informative.flatMap((it) => it.votes.map((v) => v.annotator)))];
  let acc: Record<string, number> = Object.fromEntries(annotators.map((a) => [a, prior]));
  for (let iter = 0; iter < (o.iterations ?? 20); iter++) {
    const right: Record<string, number> = {};
    const seen: Record<string, number> = {};
    for (const it of informative) {
      const post = votePosterior(it.votes, acc, it.k).posterior;
      for (const v of it.votes) {
        right[v.annotator] = (right[v.annotator] ?? 0) + (post.get(v.value) ?? 0);
        seen[v.annotator] = (seen[v.annotator] ?? 0) + 1;
      }
    }
    const next = Object.fromEntries(annotators.map((a) => [a, (right[a]! + prior * priorVotes) / (seen[a]! + priorVotes)]));
    const delta = Math.max(0, ...annotators.map((a) => Math.abs(next[a]! - acc[a]!)));
    acc = next;
    if (delta < 1e-4) break;
  }
  return acc;
}
