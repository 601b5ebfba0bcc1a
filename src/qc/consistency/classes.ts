import type { Ontology } from '../../projects/ontology';
import type { Finding } from '../findings';
import { said, tally, weightedVote, type AnnotatorLabels, type KindResult, type Tallies } from './types';
import { votePosterior, type FieldRisk } from '../risk';

export interface ClassConsensus {
  classes: string[];
  /** Reliability-weighted share of annotators behind the consensus (mean over classes when multi-label). */
  support: number;
}

/** Single-label class votes of a sample (annotations giving exactly one class): what Dawid–Skene and the batch statistics take. */
export function singleClassVotes(anns: AnnotatorLabels[]): Array<{ annotator: string; value: string }> {
  return anns.flatMap((a) => (a.labels.classes?.length === 1 ? [{ annotator: a.annotator, value: a.labels.classes[0]! }] : []));
}

/** Whether two classes sit in one of the ontology's mutually exclusive groups. */
export function exclusivePair(ontology: Ontology, a: string, b: string): boolean {
  return a !== b && (ontology.exclusive ?? []).some((g) => g.includes(a) && g.includes(b));
}

/** Findings one annotation earns on its own: unknown classes, two exclusive classes, several in single-label. */
function ontologyFindings(a: AnnotatorLabels, i: number, ontology: Ontology): Finding[] {
  const out: Finding[] = [];
  const cs = a.labels.classes ?? [];
  const known = ontology.classes && new Set(ontology.classes);
  cs.forEach((c, j) => {
    if (known && !known.has(c)) {
      out.push({ layer: 2, pointer: `/annotations/${i}/labels/classes/${j}`, rule: 'unknown_class', message: `${JSON.stringify(c)} is not a class of the ontology`, annotators: [a.annotator] });
    }
  });
  if (!ontology.multiLabel && cs.length > 1) {
    out.push({ layer: 2, pointer: `/annotations/${i}/labels/classes`, rule: 'multiple_classes', message: `single-label project, but ${cs.length} classes given: ${cs.join(', ')}`, annotators: [a.annotator] });
  }
  for (let x = 0; x < cs.length; x++) {
    for (let y = x + 1; y < cs.length; y++) {
      if (exclusivePair(ontology, cs[x]!, cs[y]!)) {
        out.push({ layer: 2, pointer: `/annotations/${i}/labels/classes`, rule: 'exclusive_conflict', message: `${cs[x]} and ${cs[y]} are mutually exclusive`, annotators: [a.annotator] });
      }
    }
  }
  return out;
}

/**
 * Sample-level class labels. Single-label: consensus is the reliability posterior's argmax when one is given
 * (Dawid–Skene), else the weighted vote. Multi-label: each class is in the consensus when its weighted vote
 * share reaches one half. Disagreement beyond `minAgreement` is a class_conflict, or an exclusive_conflict
 * when the competing classes exclude each other in the ontology.
 */
export function checkClasses(
  anns: AnnotatorLabels[],
  ontology: Ontology,
  opts: { minAgreement: number; weights: Record<string, number>; posterior?: { classes: string[]; p: number[]; flat?: number[] } },
): KindResult<ClassConsensus> & {
  /**
   * Single-label: the consensus class's probability from the labels alone (a flat class prior), what the
   * resample floor judges: a three-way split says little however common the batch makes one class.
   */
  evidence?: number;
} {
  const findings: Finding[] = [];
  const tallies: Tallies = {};
  const risks: FieldRisk[] = [];
  const labelled = anns.map((a, i) => ({ a, i })).filter(({ a }) => a.labels.classes !== undefined);
  labelled.forEach(({ a, i }) => findings.push(...ontologyFindings(a, i, ontology)));
  if (labelled.length === 0) return { findings, consensus: undefined, tallies, risks };
  const k = ontology.classes?.length ?? 0;

  if (!ontology.multiLabel) {
    const votes = labelled.filter(({ a }) => (a.labels.classes ?? []).length > 0).map(({ a }) => ({ annotator: a.annotator, value: a.labels.classes![0]! }));
    if (votes.length === 0) return { findings, consensus: { classes: [], support: 1 }, tallies, risks };
    const vote = weightedVote(votes, opts.weights);
    let value = vote.value;
    if (opts.posterior) {
      // Only classes someone actually gave are candidates: a consensus nobody labelled would surprise every reviewer.
      const given = new Set(votes.map((v) => v.value));
      let bestP = -1;
      opts.posterior.classes.forEach((c, t) => {
        if (given.has(c) && opts.posterior!.p[t]! > bestP) { bestP = opts.posterior!.p[t]!; value = c; }
      });
    }
    const total = votes.reduce((s, v) => s + (opts.weights[v.annotator] ?? 1), 0);
    const support = votes.filter((v) => v.value === value).reduce((s, v) => s + (opts.weights[v.annotator] ?? 1), 0) / total;
    const at = opts.posterior?.classes.indexOf(value) ?? -1;
    const ds = opts.posterior?.p[at];
    const flat = opts.posterior?.flat?.[at];
    // The one-coin vote stands in for whichever Dawid–Skene figure is missing.
    const oneCoin = ds === undefined || flat === undefined ? votePosterior(votes, opts.weights, k).posterior.get(value) ?? 0 : 0;
    const pWrong = 1 - (ds ?? oneCoin);
    const evidence = flat ?? oneCoin;
    risks.push({ field: 'class', pWrong, why: `${said(votes.map((v) => [v.annotator, v.value]))} → ${JSON.stringify(value)} with probability ${(1 - pWrong).toFixed(3)} (${ds !== undefined ? 'Dawid–Skene' : 'annotator accuracies'})` });
    if (votes.length > 1) {
      for (const v of votes) tally(tallies, v.annotator, v.value === value);
      const dissent = votes.filter((v) => v.value !== value);
      if (dissent.length > 0 && support < opts.minAgreement - 1e-12) {
        const exclusive = dissent.some((d) => exclusivePair(ontology, d.value, value));
        findings.push({
          layer: 2, pointer: '/annotations', rule: exclusive ? 'exclusive_conflict' : 'class_conflict',
          message: `annotators disagree on the class (consensus ${JSON.stringify(value)} with ${(support * 100).toFixed(0)}% support): ${said(votes.map((v) => [v.annotator, v.value]))}`,
          annotators: votes.map((v) => v.annotator),
        });
      }
    }
    return { findings, consensus: { classes: [value], support }, tallies, risks, evidence };
  }

  // Multi-label: one vote per class and annotator, present or absent.
  const all = [...new Set(labelled.flatMap(({ a }) => a.labels.classes!))].sort();
  const total = labelled.reduce((s, { a }) => s + (opts.weights[a.annotator] ?? 1), 0);
  const chosen: string[] = [];
  let supportSum = 0;
  for (const c of all) {
    const withC = labelled.filter(({ a }) => a.labels.classes!.includes(c));
    const share = withC.reduce((s, { a }) => s + (opts.weights[a.annotator] ?? 1), 0) / total;
    const inConsensus = share >= 0.5;
    if (inConsensus) chosen.push(c);
    const presence = votePosterior(labelled.map(({ a }) => ({ annotator: a.annotator, value: a.labels.classes!.includes(c) ? 'yes' : 'no' })), opts.weights, 2);
    risks.push({ field: `class:${c}`, pWrong: inConsensus === (presence.value === 'yes') ? presence.pWrong : 1 - presence.pWrong, why: `${c} given by ${withC.map(({ a }) => a.annotator).join(', ') || 'nobody'} of ${labelled.length}` });
    const agreeShare = inConsensus ? share : 1 - share;
    supportSum += agreeShare;
    if (labelled.length > 1) {
      for (const { a } of labelled) tally(tallies, a.annotator, a.labels.classes!.includes(c) === inConsensus);
      if (agreeShare < 1 && agreeShare < opts.minAgreement - 1e-12) {
        findings.push({
          layer: 2, pointer: '/annotations', rule: 'class_conflict',
          message: `annotators disagree on ${JSON.stringify(c)}: given by ${withC.map(({ a }) => a.annotator).join(', ')}; not by ${labelled.filter((x) => !withC.includes(x)).map(({ a }) => a.annotator).join(', ')}`,
          annotators: labelled.map(({ a }) => a.annotator),
        });
      }
    }
  }
  return { findings, consensus: { classes: chosen, support: all.length > 0 ? supportSum / all.length : 1 }, tallies, risks };
}
