import type { Ontology } from '../../projects/ontology';
import { valueAtPointer } from '../compliance';
import type { Finding } from '../findings';
import type { QcPolicy } from '../policy';
import { attributeValueFindings, checkAttributes } from './attributes';
import { checkClasses, singleClassVotes, type ClassConsensus } from './classes';
import { checkBoxes, checkSpans, type ClassModel, type ConsensusObject } from './objects';
import type { Box, Interval } from './matching';
import type { AnnotatorLabels, Tallies } from './types';
import { combineRisks, DEFAULT_ACCURACY, type SampleRisk } from '../risk';

export type { AnnotatorLabels, Tallies } from './types';

export interface Consensus {
  classes?: ClassConsensus;
  boxes?: ConsensusObject<Box>[];
  spans?: ConsensusObject<Interval>[];
  attributes?: Record<string, string | number | boolean>;
}

export interface ConsistencyResult {
  passed: boolean;
  findings: Finding[];
  /**
   * The weakest label kind's agreement (share of annotator comparisons that matched the consensus); 1 when
   * nothing was compared. The minimum, not the mean: a sample is only as trustworthy as its least-agreed
   * labels, and many agreeing boxes must not hide a split class vote.
   */
  agreement: number;
  /** Agreement per label kind that had comparisons. */
  agreementByKind: Record<string, number>;
  consensus: Consensus;
  tallies: Tallies;
  /** Probability that the consensus is wrong, and of each field (plugins' label kinds not included). */
  risk: SampleRisk;
  /**
   * Rules of findings no vote can settle: labels outside the ontology, several classes in a single-label
   * project, disallowed attribute values. They go to a person whatever the risk says.
   */
  blocking: string[];
}

/** Findings about one annotation against the ontology, as opposed to disagreement between annotators. */
export function isBlocking(f: Finding): boolean {
  return ['unknown_class', 'multiple_classes', 'attribute_value', 'dont_care_share'].includes(f.rule) || (f.rule === 'exclusive_conflict' && (f.annotators?.length ?? 0) <= 1);
}

export function mergeTallies(into: Tallies, from: Tallies): Tallies {
  for (const [a, t] of Object.entries(from)) {
    const x = (into[a] ??= { compared: 0, agreed: 0 });
    x.compared += t.compared;
    x.agreed += t.agreed;
  }
  return into;
}

export function agreementOf(t: Tallies): number {
  let compared = 0;
  let agreed = 0;
  for (const x of Object.values(t)) { compared += x.compared; agreed += x.agreed; }
  return compared > 0 ? agreed / compared : 1;
}

/**
 * Layer 2 for one sample: classes, boxes, spans and attributes across its annotations, each against the
 * ontology too (so a single annotation still gets those checks). Any finding is a conflict → review.
 * Tag sequences are checked by the sequence-labels plugin, which merges into the same result.
 */
export function checkConsistency(input: {
  annotations: AnnotatorLabels[];
  payload: Record<string, unknown>;
  ontology: Ontology;
  policy: QcPolicy['layer2'];
  weights: Record<string, number>;
  /** Annotators' accuracy on attributes (oneCoinAccuracies) and on drawing objects (objectAccuracies), from the batch; their class accuracy when absent. */
  attributeWeights?: Record<string, number>;
  objectWeights?: Record<string, number>;
  /** Annotators' accuracy on the classes of objects (objectAccuracies), used where `weights` has none for them. */
  objectClassWeights?: Record<string, number>;
  /** Annotators' accuracy on the exact bounds of spans (objectAccuracies); their objectWeights when absent. */
  objectBoundsWeights?: Record<string, number>;
  classPosterior?: { classes: string[]; p: number[]; flat?: number[] };
  /** The same model for any set of class votes: boxes' classes are judged with it too. */
  classModel?: ClassModel;
}): ConsistencyResult {
  const { annotations: anns, ontology, policy, weights } = input;
  const attributeWeights = input.attributeWeights ?? weights;
  const classes = checkClasses(anns, ontology, { minAgreement: policy.minClassAgreement, weights, posterior: input.classPosterior });
  const accuracy = { attributes: attributeWeights, objects: input.objectWeights, classes: input.objectClassWeights, bounds: input.objectBoundsWeights };
  const single = !ontology.multiLabel && classes.consensus?.classes.length === 1;
  const sampleClass = single ? { value: classes.consensus!.classes[0]!, votes: Object.fromEntries(singleClassVotes(anns).map((v) => [v.annotator, v.value])) } : undefined;
  const split = { splitObjects: policy.splitObjects, maxDontCareShare: policy.maxDontCareShare };
  const boxes = checkBoxes(anns, ontology, { matchIou: policy.boxMatchIou, agreeIou: policy.boxAgreeIou, weights, accuracy, ...split, ...(input.classModel ? { classModel: input.classModel } : {}), ...(sampleClass ? { sampleClass } : {}) });
  let tokenText: string | undefined;
  if (policy.spanUnit === 'token') {
    const t = valueAtPointer(input.payload, policy.spanTextPointer);
    tokenText = typeof t === 'string' ? t : '';
  }
  const spans = checkSpans(anns, ontology, { matchIou: policy.spanMatchIou, agreeIou: policy.spanAgreeIou, weights, tokenText, accuracy, ...split });
  const attributes = checkAttributes(anns, attributeWeights, ontology.attributes ?? {});
  const findings = [...classes.findings, ...boxes.findings, ...spans.findings, ...attributes.findings, ...attributeValueFindings(anns, ontology)];
  const kinds = { classes: classes.tallies, boxes: boxes.tallies, spans: spans.tallies, attributes: attributes.tallies };
  const tallies = Object.values(kinds).reduce((acc, t) => mergeTallies(acc, t), {} as Tallies);
  const agreementByKind: Record<string, number> = {};
  for (const [k, t] of Object.entries(kinds)) if (Object.keys(t).length > 0) agreementByKind[k] = agreementOf(t);
  const consensus: Consensus = {};
  if (classes.consensus) consensus.classes = classes.consensus;
  if (boxes.consensus) consensus.boxes = boxes.consensus;
  if (spans.consensus) consensus.spans = spans.consensus;
  if (attributes.consensus) consensus.attributes = attributes.consensus;
  const classRisk = classes.risks.find((r) => r.field === 'class');
  const contested = [kinds.classes, kinds.boxes, kinds.spans].some((t) => Object.values(t).some((x) => x.agreed < x.compared));
  const risk = combineRisks([...classes.risks, ...boxes.risks, ...spans.risks, ...attributes.risks], classRisk ? classes.evidence ?? 1 - classRisk.pWrong : undefined, contested);
  const blocking = [...new Set(findings.filter(isBlocking).map((f) => f.rule))];
  return { passed: findings.length === 0, findings, agreement: Math.min(1, ...Object.values(agreementByKind)), agreementByKind, consensus, tallies, risk, blocking };
}

/**
 * How often each annotator's drawing agrees with the consensus on which objects exist over a batch (a
 * drawn object the consensus keeps, or an absent one it drops; a displaced drawing counts as drawn),
 * how often the class they gave an object several drew is its consensus class, and how often their
 * span bounds are the consensus bounds (for the vote on bounds: an annotator who finds every entity
 * but cuts them short should lose a split on where one ends), each shrunk towards the
 * default by 4 pseudo-comparisons: their accuracy at drawing what is there, for the existence votes, and
 * at naming it, for object class votes where the batch has no sample-class fit.
 * Without it every annotator would be taken as DEFAULT_ACCURACY and a sample with five boxes would look
 * 3% risky even when three careful annotators drew all five alike. An annotator seen on few sampled
 * objects stays near the default.
 */
export function objectAccuracies(samples: Array<{ annotations: AnnotatorLabels[]; payload: Record<string, unknown> }>, ontology: Ontology, policy: QcPolicy['layer2'], maxSamples = 500): { objects: Record<string, number>; classes: Record<string, number>; bounds: Record<string, number> } {
  const existence: Tallies = {};
  const classes: Tallies = {};
  const bounds: Tallies = {};
  const add = (r: { existence?: Tallies; classes?: Tallies; bounds?: Tallies }): void => { mergeTallies(existence, r.existence ?? {}); mergeTallies(classes, r.classes ?? {}); mergeTallies(bounds, r.bounds ?? {}); };
  // An evenly spread subset is plenty for an agreement rate, and keeps this pass a fraction of layer 2's cost.
  const step = Math.max(1, Math.ceil(samples.length / maxSamples));
  for (let i = 0; i < samples.length; i += step) {
    const s = samples[i]!;
    add(checkBoxes(s.annotations, ontology, { matchIou: policy.boxMatchIou, agreeIou: policy.boxAgreeIou, weights: {} }));
    if (s.annotations.some((a) => a.labels.spans !== undefined)) {
      const text = valueAtPointer(s.payload, policy.spanTextPointer);
      add(checkSpans(s.annotations, ontology, { matchIou: policy.spanMatchIou, agreeIou: policy.spanAgreeIou, weights: {}, tokenText: policy.spanUnit === 'token' ? (typeof text === 'string' ? text : '') : undefined }));
    }
  }
  const shrunk = (t: Tallies) => Object.fromEntries(Object.entries(t).map(([a, x]) => [a, (x.agreed + DEFAULT_ACCURACY * 4) / (x.compared + 4)]));
  return { objects: shrunk(existence), classes: shrunk(classes), bounds: shrunk(bounds) };
}
