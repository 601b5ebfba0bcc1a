/**
 * The probability that a sample's consensus is wrong, field by field. Each label field (the class, each
 * attribute, each object's existence, class and geometry) gets the posterior probability that its
 * consensus value is not the true one, under a one-coin model of the annotators: annotator a gives the true
 * value with probability acc(a) (their Dawid–Skene accuracy) and any of the K − 1 others otherwise. Fields
 * are taken as independent, so the sample is right only when every field is.
 */

import { recalibrate, type Recalibration } from './stats/recalibration';

export interface FieldRisk {
  /** Which label field: `class`, `attribute:<key>`, `box:<i>:exists|class|geometry|attribute:<key>`, … */
  field: string;
  /** Probability that the consensus value of this field is wrong. */
  pWrong: number;
  /** In words, for a reviewer: who said what and how it was weighed. */
  why: string;
  /**
   * Another field that asks the same question of the same annotators (a box's class where each of them
   * gave the box the class they gave the image): right exactly when that one is, so counted once, there.
   */
  sameAs?: string;
}

export interface SampleRisk {
  pWrong: number;
  /** The same over the primary fields (classes, objects' existence, class and geometry, spans) … */
  primary: number;
  /** … and over the attributes, which the policy holds to their own, usually looser, error budget. */
  attributes: number;
  fields: FieldRisk[];
  /**
   * The consensus class's probability from the labels alone (flat class prior), when the sample has a
   * class; a sample whose best class is under the policy's floor carries too little information to settle.
   */
  classPosterior?: number;
  /**
   * The primary and overall estimates as the annotator models gave them, before recalibration against
   * reviewers (src/qc/stats/recalibration.ts); absent when none applied. Later fits learn from these.
   */
  raw?: { primary: number; pWrong: number };
  /** Some annotator's primary label (class, object, span) disagrees with the consensus: what recalibration keys on besides the estimate. */
  contested?: boolean;
}

/** Annotators without a record yet are taken as fairly reliable (a new hire is not trusted blindly, nor ignored). */
export const DEFAULT_ACCURACY = 0.85;
const MAX_ACCURACY = 0.99;

/** An accuracy kept inside (1/K, MAX]: below chance a vote would count for the other values, which the one-coin model cannot say. */
export function boundedAccuracy(acc: number | undefined, k: number): number {
  const a = acc ?? DEFAULT_ACCURACY;
  return Math.min(MAX_ACCURACY, Math.max(1 / k + 0.01, Number.isFinite(a) ? a : DEFAULT_ACCURACY));
}

/**
 * Posterior over the values voted for, under the one-coin model with `k` possible values (values nobody
 * gave share the rest of the mass; `k` 0 when unknown). Returns the winner and the probability that it is not the true value.
 */
export function votePosterior<V extends string>(votes: Array<{ annotator: string; value: V }>, accuracy: Record<string, number>, k: number): { value: V; pWrong: number; posterior: Map<V, number> } {
  // Unknown K (0): the values given plus at least one nobody gave.
  const distinct = new Set(votes.map((v) => v.value)).size;
  const kk = Math.max(k > 0 ? Math.max(k, distinct) : distinct + 1, 2);
  const values = [...new Set(votes.map((v) => v.value))];
  // log P(votes | truth = v) for each voted value, and for one value nobody voted for.
  const logLik = (truth: V | undefined): number => votes.reduce((s, v) => {
    const a = boundedAccuracy(accuracy[v.annotator], kk);
    return s + Math.log(v.value === truth ? a : (1 - a) / (kk - 1));
  }, 0);
  const lls = values.map((v) => logLik(v));
  const unseen = logLik(undefined);
  const unseenCount = kk - values.length;
  const max = Math.max(...lls, unseen);
  const z = lls.reduce((s, l) => s + Math.exp(l - max), 0) + unseenCount * Math.exp(unseen - max);
  const posterior = new Map<V, number>(values.map((v, i) => [v, Math.exp(lls[i]! - max) / z]));
  let best = values[0]!;
  for (const v of values) if (posterior.get(v)! > posterior.get(best)!) best = v;
  return { value: best, pWrong: 1 - posterior.get(best)!, posterior };
}

/**
 * Probability that matched boxes (or spans) fused into one are off the true object, from how well the
 * annotators agree: their mean pairwise overlap, on a logistic centred where the annotators' shapes stop
 * overlapping more than half (at 0.35, 0.5 gives 0.05 and 0.65 gives 0.0025). Jitter of a few pixels costs
 * almost nothing; shapes that barely overlap are as good as unknown. A single shape has no check: 0.1.
 */
export function geometryRisk(meanOverlap: number | undefined): number {
  if (meanOverlap === undefined) return 0.1;
  return 1 / (1 + Math.exp(20 * (meanOverlap - 0.35)));
}

/** Attribute fields (`attribute:<key>`, `boxes:<i>:attribute:<key>`): secondary labels with their own error budget. */
export function isAttributeField(field: string): boolean {
  return field.startsWith('attribute:') || field.includes(':attribute:');
}

/** The label a primary field is part of: an object's existence, class and geometry are one label (`boxes:3`). */
function labelOf(field: string): string {
  const m = /^(boxes|spans):(\d+):/.exec(field);
  return m ? `${m[1]}:${m[2]}` : field;
}

/**
 * The sample's primary labels and how many of them are expected wrong (each label 1 − Π(1 − p) over its
 * fields) and the likeliest wrong of them: what a `per: label` budget counts. A recalibrated risk scales
 * them as reviews moved the sample's primary estimate.
 */
export function labelRisk(risk: Pick<SampleRisk, 'fields' | 'primary' | 'raw'>): { expectedWrong: number; labels: number; worst: number } {
  const right = new Map<string, number>();
  for (const f of risk.fields) {
    if (f.sameAs || isAttributeField(f.field)) continue;
    const k = labelOf(f.field);
    right.set(k, (right.get(k) ?? 1) * (1 - f.pWrong));
  }
  let expectedWrong = 0;
  let worst = 0;
  for (const r of right.values()) { expectedWrong += 1 - r; worst = Math.max(worst, 1 - r); }
  const scale = risk.raw && risk.raw.primary > 0 ? risk.primary / risk.raw.primary : 1;
  return { expectedWrong: Math.min(right.size, expectedWrong * scale), labels: right.size, worst: Math.min(1, worst * scale) };
}

/** 1 − Π(1 − pᵢ) over the fields not `sameAs` another: the sample is right only when every field is (and likewise per group). */
export function combineRisks(fields: FieldRisk[], classPosterior?: number, contested?: boolean): SampleRisk {
  const wrong = (fs: FieldRisk[]): number => Math.min(1, Math.max(0, 1 - fs.reduce((s, f) => (f.sameAs ? s : s * (1 - f.pWrong)), 1)));
  return {
    pWrong: wrong(fields), primary: wrong(fields.filter((f) => !isAttributeField(f.field))), attributes: wrong(fields.filter((f) => isAttributeField(f.field))),
    fields, ...(classPosterior === undefined ? {} : { classPosterior }), ...(contested === undefined ? {} : { contested }),
  };
}

/**
 * Folds the layer-3 model's probability of the consensus class into that class's posterior, as CROWDLAB
 * weighs a classifier against the annotators: the model is one more voter whose evidence is its likelihood
 * ratio against the class prior (1/K), scaled by `weight` (the model's trust relative to an annotator).
 */
export function withModel(risk: SampleRisk, modelP: number, k: number, weight = 1): SampleRisk {
  const cls = risk.fields.find((f) => f.field === 'class');
  if (!cls || !Number.isFinite(modelP)) return risk;
  const clip = (p: number): number => Math.min(1 - 1e-6, Math.max(1e-6, p));
  const logit = (p: number): number => Math.log(clip(p) / (1 - clip(p)));
  const prior = 1 / Math.max(2, k);
  const l = logit(1 - cls.pWrong) + weight * (logit(modelP) - logit(prior));
  const pRight = 1 / (1 + Math.exp(-l));
  const fields = risk.fields.map((f) => (f === cls ? { ...f, pWrong: 1 - pRight, why: `${f.why}; model gives the consensus class p=${modelP.toFixed(3)}` } : f));
  // classPosterior stays the labels' own evidence: labels that agree with each other but not with the
  // model are a question for a person (review), not labels too uninformative to settle (resample).
  return combineRisks(fields, risk.classPosterior, risk.contested);
}

/**
 * The risk with its primary group recalibrated against reviewers; fields keep the models' own words, and
 * attributes their own estimate (reviews are not told apart by which field was wrong).
 */
export function recalibrated(risk: SampleRisk, r: Recalibration): SampleRisk {
  if (r.reviews === 0) return risk;
  const primary = recalibrate(risk.primary, risk.contested ?? false, r);
  return { ...risk, primary, pWrong: 1 - (1 - primary) * (1 - risk.attributes), raw: { primary: risk.primary, pWrong: risk.pWrong } };
}
