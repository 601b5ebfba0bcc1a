import type { Finding } from '../findings';
import { said, tally, type AnnotatorLabels, type Tallies } from './types';
import { votePosterior, type FieldRisk } from '../risk';

export type TagScheme = 'BIO' | 'BIOES';

interface Tag {
  prefix: 'O' | 'B' | 'I' | 'E' | 'S';
  type: string;
}

export function parseTag(tag: string, scheme: TagScheme): Tag | undefined {
  if (tag === 'O') return { prefix: 'O', type: '' };
  const m = /^([BIES])-(.+)$/.exec(tag);
  if (!m) return undefined;
  const prefix = m[1] as Tag['prefix'];
  if (scheme === 'BIO' && (prefix === 'E' || prefix === 'S')) return undefined;
  return { prefix, type: m[2]! };
}

/** Whether `next` may follow `prev` (undefined = sentence start). */
export function allowedTransition(prev: Tag | undefined, next: Tag, scheme: TagScheme): boolean {
  const inside = prev !== undefined && (prev.prefix === 'B' || prev.prefix === 'I');
  if (scheme === 'BIO') return next.prefix !== 'I' || (inside && prev.type === next.type);
  // BIOES: an open entity must continue with I/E of its type; a closed one may not be continued.
  if (inside) return (next.prefix === 'I' || next.prefix === 'E') && next.type === prev.type;
  return next.prefix === 'O' || next.prefix === 'B' || next.prefix === 'S';
}

/** BIOES may not end inside an entity; BIO may. */
export function allowedEnd(last: Tag, scheme: TagScheme): boolean {
  return scheme === 'BIO' || last.prefix === 'O' || last.prefix === 'E' || last.prefix === 'S';
}

/** Invalid tags and transitions of one annotator's sequence, each pointing at the offending position. */
export function tagSequenceFindings(tags: string[], scheme: TagScheme, pointer: string, annotator: string, entities?: Set<string>): Finding[] {
  const out: Finding[] = [];
  let prev: Tag | undefined;
  let prevRaw = '(start)';
  tags.forEach((raw, j) => {
    const t = parseTag(raw, scheme);
    if (!t) {
      out.push({ layer: 2, pointer: `${pointer}/${j}`, rule: 'unknown_tag', message: `${JSON.stringify(raw)} is not a ${scheme} tag`, annotators: [annotator] });
      prev = undefined;
      prevRaw = raw;
      return;
    }
    if (entities && t.type !== '' && !entities.has(t.type)) {
      out.push({ layer: 2, pointer: `${pointer}/${j}`, rule: 'unknown_class', message: `${JSON.stringify(t.type)} is not an entity of the ontology`, annotators: [annotator] });
    }
    if (!allowedTransition(prev, t, scheme)) {
      out.push({ layer: 2, pointer: `${pointer}/${j}`, rule: 'invalid_transition', message: `${raw} may not follow ${prevRaw} under ${scheme}`, annotators: [annotator] });
    }
    prev = t;
    prevRaw = raw;
  });
  if (prev && !allowedEnd(prev, scheme)) {
    out.push({ layer: 2, pointer: `${pointer}/${tags.length - 1}`, rule: 'invalid_transition', message: `${prevRaw} may not end the sequence under ${scheme}`, annotators: [annotator] });
  }
  return out;
}

/** Every tag of the scheme over the given entity types. */
export function tagSet(types: string[], scheme: TagScheme): string[] {
  const prefixes = scheme === 'BIO' ? ['B', 'I'] : ['B', 'I', 'E', 'S'];
  return ['O', ...types.flatMap((t) => prefixes.map((p) => `${p}-${t}`))];
}

/**
 * The best tag path that obeys the scheme, under per-position vote distributions (log-probabilities over
 * `labels`). Plain majority per token can produce I-X after O; decoding over the allowed-transition lattice
 * cannot. Returns undefined when no valid path exists (never, for BIO/BIOES with an O tag).
 */
export function viterbi(emissions: number[][], labels: string[], scheme: TagScheme): string[] | undefined {
  const n = emissions.length;
  if (n === 0) return [];
  const parsed = labels.map((l) => parseTag(l, scheme)!);
  const k = labels.length;
  let score = parsed.map((t, y) => (allowedTransition(undefined, t, scheme) ? emissions[0]![y]! : -Infinity));
  const back: Int32Array[] = [];
  for (let i = 1; i < n; i++) {
    const next = new Array<number>(k).fill(-Infinity);
    const ptr = new Int32Array(k).fill(-1);
    for (let y = 0; y < k; y++) {
      for (let x = 0; x < k; x++) {
        if (score[x] === -Infinity || !allowedTransition(parsed[x], parsed[y]!, scheme)) continue;
        const s = score[x]! + emissions[i]![y]!;
        if (s > next[y]!) { next[y] = s; ptr[y] = x; }
      }
    }
    back.push(ptr);
    score = next;
  }
  let best = -1;
  for (let y = 0; y < k; y++) if (allowedEnd(parsed[y]!, scheme) && score[y]! > -Infinity && (best < 0 || score[y]! > score[best]!)) best = y;
  if (best < 0) return undefined;
  const path = [best];
  for (let i = back.length - 1; i >= 0; i--) path.push(back[i]![path[path.length - 1]!]!);
  return path.reverse().map((y) => labels[y]!);
}

export interface TagCheck {
  findings: Finding[];
  consensus: string[] | undefined;
  /** Share of (annotator, token) votes that agree with the decoded path. */
  agreement: number;
  tallies: Tallies;
  /** Probability the consensus is wrong, per run of tokens the annotators split alike (`tags:<first>-<last>`). */
  risks: FieldRisk[];
}

/**
 * Per token, the one-coin posterior that the decoded tag is wrong; consecutive tokens on which the same
 * annotators agree with the path are one question (who misses an entity misses all its tokens), so each
 * such run is one field, as likely wrong as its weakest token.
 */
export function tagRisks(seqs: Array<{ annotator: string; tags: string[] }>, path: string[], k: number, accuracy: Record<string, number>): FieldRisk[] {
  const out: FieldRisk[] = [];
  let start = 0;
  let worst = 0;
  let sig = '';
  const flush = (end: number): void => {
    if (end < start) return;
    const dissent = seqs.filter((q) => q.tags[start] !== path[start]);
    out.push({
      field: `tags:${start}-${end}`, pWrong: worst,
      why: `tokens ${start}–${end} tagged ${path.slice(start, end + 1).join(' ')}${dissent.length ? `; ${said(dissent.map((q) => [q.annotator, q.tags.slice(start, end + 1).join(' ')]))}` : ' by all'}`,
    });
  };
  path.forEach((tag, t) => {
    const s = seqs.map((q) => (q.tags[t] === tag ? '1' : '0')).join('');
    const p = votePosterior(seqs.map((q) => ({ annotator: q.annotator, value: q.tags[t]! })), accuracy, k).posterior.get(tag) ?? 0;
    if (t > 0 && s !== sig) { flush(t - 1); start = t; worst = 0; }
    sig = s;
    worst = Math.max(worst, 1 - p);
  });
  flush(path.length - 1);
  return out;
}

/**
 * Checks every annotation's tag sequence, then decodes the consensus path from the annotators' weighted
 * votes (add-one smoothed) with Viterbi. Tokens where the consensus has less support than `minAgreement`
 * are a tag_conflict naming who said what; its `risks` say how likely the path is wrong where they split.
 */
export function checkTags(
  anns: AnnotatorLabels[], o: { scheme: TagScheme; entities?: string[]; minAgreement: number; weights: Record<string, number> },
): TagCheck {
  const findings: Finding[] = [];
  const tallies: Tallies = {};
  const entitySet = o.entities && new Set(o.entities);
  const tagged = anns.map((a, i) => ({ a, i })).filter(({ a }) => a.labels.tags !== undefined);
  tagged.forEach(({ a, i }) => findings.push(...tagSequenceFindings(a.labels.tags!, o.scheme, `/annotations/${i}/labels/tags`, a.annotator, entitySet)));
  if (tagged.length === 0) return { findings, consensus: undefined, agreement: 1, tallies, risks: [] };
  const lengths = new Set(tagged.map(({ a }) => a.labels.tags!.length));
  if (lengths.size > 1) {
    findings.push({
      layer: 2, pointer: '/annotations', rule: 'tag_length_mismatch',
      message: `annotators tagged different numbers of tokens: ${said(tagged.map(({ a }) => [a.annotator, a.labels.tags!.length]))}`,
      annotators: tagged.map(({ a }) => a.annotator),
    });
    return { findings, consensus: undefined, agreement: 0, tallies, risks: [] };
  }
  const types = o.entities ?? [...new Set(tagged.flatMap(({ a }) => a.labels.tags!.map((t) => parseTag(t, o.scheme)?.type ?? '').filter((t) => t !== '')))].sort();
  const labels = tagSet(types, o.scheme);
  const index = new Map(labels.map((l, y) => [l, y]));
  const n = [...lengths][0]!;
  const totalWeight = tagged.reduce((s, { a }) => s + (o.weights[a.annotator] ?? 1), 0);
  const emissions = Array.from({ length: n }, (_, t) => {
    const votes = new Array<number>(labels.length).fill(0);
    for (const { a } of tagged) {
      const y = index.get(a.labels.tags![t]!);
      if (y !== undefined) votes[y]! += o.weights[a.annotator] ?? 1;
    }
    return votes.map((v) => Math.log((v + 0.01) / (totalWeight + 0.01 * labels.length)));
  });
  const path = viterbi(emissions, labels, o.scheme);
  if (!path) return { findings, consensus: undefined, agreement: 0, tallies, risks: [] };
  let agreed = 0;
  const conflicts: number[] = [];
  for (let t = 0; t < n; t++) {
    let support = 0;
    for (const { a } of tagged) {
      const ok = a.labels.tags![t] === path[t];
      if (ok) { agreed++; support += o.weights[a.annotator] ?? 1; }
      if (tagged.length > 1) tally(tallies, a.annotator, ok);
    }
    if (tagged.length > 1 && support / totalWeight < o.minAgreement - 1e-12) conflicts.push(t);
  }
  for (const t of conflicts) {
    findings.push({
      layer: 2, pointer: `/annotations/*/labels/tags/${t}`, rule: 'tag_conflict',
      message: `token ${t}: consensus ${path[t]}; ${said(tagged.map(({ a }) => [a.annotator, a.labels.tags![t]]))}`,
      annotators: tagged.map(({ a }) => a.annotator),
    });
  }
  const risks = tagRisks(tagged.map(({ a }) => ({ annotator: a.annotator, tags: a.labels.tags! })), path, labels.length, o.weights);
  return { findings, consensus: path, agreement: agreed / (n * tagged.length || 1), tallies, risks };
}
