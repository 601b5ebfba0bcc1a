import type { Ontology } from '../../projects/ontology';
import type { Finding } from '../findings';
import { said, tally, valueVote, type AnnotatorLabels, type KindResult, type Tallies } from './types';
import { votePosterior, type FieldRisk } from '../risk';
import type { OneCoinItem } from '../stats/one-coin';

type Value = string | number | boolean;

/** Values outside the ontology's allowed list, for sample-level and box-level attributes alike. */
export function attributeValueFindings(anns: AnnotatorLabels[], ontology: Ontology): Finding[] {
  const allowed = ontology.attributes;
  if (!allowed) return [];
  const out: Finding[] = [];
  const check = (attrs: Record<string, Value> | undefined, pointer: string, annotator: string): void => {
    for (const [k, v] of Object.entries(attrs ?? {})) {
      const values = allowed[k];
      if (values && !values.includes(String(v))) {
        out.push({ layer: 2, pointer: `${pointer}/${k}`, rule: 'attribute_value', message: `${k} = ${JSON.stringify(v)} is not one of ${values.join(', ')}`, annotators: [annotator] });
      }
    }
  };
  anns.forEach((a, i) => {
    check(a.labels.attributes, `/annotations/${i}/labels/attributes`, a.annotator);
    (a.labels.boxes ?? []).forEach((b, j) => check(b.attributes, `/annotations/${i}/labels/boxes/${j}/attributes`, a.annotator));
  });
  return out;
}

/**
 * A reliability-weighted vote on one attribute: the winner, who dissented, and the probability that the
 * winner is wrong (`k` allowed values, from the ontology when it lists them).
 */
export function attributeVote(votes: Array<{ annotator: string; value: Value | undefined }>, weights: Record<string, number>, k: number): { value: Value | undefined; dissenters: string[]; pWrong: number } {
  const vote = valueVote(votes, weights);
  const key = (v: Value | undefined): string => String(JSON.stringify(v));
  const posterior = votePosterior(votes.map((v) => ({ annotator: v.annotator, value: key(v.value) })), weights, k).posterior;
  return { ...vote, pWrong: 1 - (posterior.get(key(vote.value)) ?? 0) };
}

/**
 * Sample-level attributes: per key, the reliability-weighted vote. Any dissent is an attribute_conflict
 * finding; how much it matters is the vote's probability of being wrong.
 */
export function checkAttributes(anns: AnnotatorLabels[], weights: Record<string, number>, allowed: Record<string, string[]> = {}): KindResult<Record<string, Value>> {
  const findings: Finding[] = [];
  const tallies: Tallies = {};
  const risks: FieldRisk[] = [];
  const withAttrs = anns.filter((a) => a.labels.attributes !== undefined);
  if (withAttrs.length === 0) return { findings, consensus: undefined, tallies, risks };
  const keys = [...new Set(withAttrs.flatMap((a) => Object.keys(a.labels.attributes!)))].sort();
  const consensus: Record<string, Value> = {};
  for (const k of keys) {
    const votes = withAttrs.filter((a) => a.labels.attributes![k] !== undefined).map((a) => ({ annotator: a.annotator, value: a.labels.attributes![k]! }));
    const vote = attributeVote(votes, weights, allowed[k]?.length ?? 0);
    consensus[k] = vote.value!;
    risks.push({ field: `attribute:${k}`, pWrong: vote.pWrong, why: `${k}: ${said(votes.map((v) => [v.annotator, v.value]))}` });
    if (votes.length < 2) continue;
    for (const v of votes) tally(tallies, v.annotator, !vote.dissenters.includes(v.annotator));
    if (vote.dissenters.length > 0) {
      findings.push({
        layer: 2, pointer: `/annotations/*/labels/attributes/${k}`, rule: 'attribute_conflict',
        message: `annotators disagree on ${k}: ${said(votes.map((v) => [v.annotator, v.value]))}`,
        annotators: votes.map((v) => v.annotator),
      });
    }
  }
  return { findings, consensus, tallies, risks };
}

/**
 * One sample's attribute votes as items for estimating annotators' attribute accuracy (oneCoinAccuracies):
 * sample-level attributes per key, and box attributes when every annotator drew exactly one box (no
 * matching needed to know which boxes are the same object).
 */
export function attributeItems(anns: AnnotatorLabels[], allowed: Record<string, string[]> = {}): OneCoinItem[] {
  const items: OneCoinItem[] = [];
  const collect = (sets: Array<{ annotator: string; attrs: Record<string, Value> | undefined }>): void => {
    const keys = new Set(sets.flatMap((x) => Object.keys(x.attrs ?? {})));
    for (const k of keys) {
      const votes = sets.flatMap((x) => (x.attrs?.[k] === undefined ? [] : [{ annotator: x.annotator, value: String(JSON.stringify(x.attrs[k])) }]));
      items.push({ k: allowed[k]?.length ?? 0, votes });
    }
  };
  collect(anns.filter((a) => a.labels.attributes).map((a) => ({ annotator: a.annotator, attrs: a.labels.attributes })));
  const drew = anns.filter((a) => a.labels.boxes !== undefined);
  if (drew.length > 1 && drew.every((a) => a.labels.boxes!.length === 1)) collect(drew.map((a) => ({ annotator: a.annotator, attrs: a.labels.boxes![0]!.attributes })));
  return items;
}
