import { createHash } from 'node:crypto';
import type { Finding } from './findings';
import type { QcPolicy } from './policy';
import { combineRisks, labelRisk, recalibrated, withModel, type SampleRisk } from './risk';
import type { Recalibration } from './stats/recalibration';

export type Disposition = 'accepted' | 'review' | 'resample' | 'rejected';

/** Why a sample got its disposition; stored with the layer-5 result and shown to reviewers. */
export type DispositionReason = 'layer1_failed' | 'layer2_conflict' | 'layer3_error' | 'confident' | 'audit' | 'annotator_alert' | 'uncertain' | 'low_confidence' | 'review_budget';

export interface FusionInputs {
  /** Layer 3: probability of the consensus label. */
  score?: number;
  /** Layer 3: normalised predictive entropy (or ensemble spread). */
  uncertainty?: number;
  /** Layer 4: stability of the recent score distribution. */
  stability?: number;
  /** Layer 2 agreement, the stand-in for the score while no layer-3 model runs. */
  agreement: number;
}

export interface Fusion {
  final: number;
  /** The values fused, after stand-ins for absent inputs. */
  inputs: { score: number; uncertainty: number; stability: number };
  weights: QcPolicy['fusion']['weights'];
  /** Inputs that were absent and what stood in for them, so a reviewer sees why. */
  absent: Array<{ input: 'score' | 'uncertainty' | 'stability'; usedInstead: string }>;
}

/**
 * Weighted sum of score, uncertainty and stability, clamped to [0, 1]. An absent input takes a neutral
 * stand-in rather than zero, so a project without a model is judged on annotator agreement alone:
 * score ← layer-2 agreement, uncertainty ← 0, stability ← 1.
 */
export function fuseConfidence(x: FusionInputs, weights: QcPolicy['fusion']['weights']): Fusion {
  const absent: Fusion['absent'] = [];
  const pick = (input: 'score' | 'uncertainty' | 'stability', v: number | undefined, standIn: number, usedInstead: string): number => {
    if (v !== undefined && Number.isFinite(v)) return v;
    absent.push({ input, usedInstead });
    return standIn;
  };
  const inputs = {
    score: pick('score', x.score, x.agreement, `layer-2 agreement ${x.agreement.toFixed(3)} (layer 3 did not run)`),
    uncertainty: pick('uncertainty', x.uncertainty, 0, '0 (layer 3 did not run)'),
    stability: pick('stability', x.stability, 1, '1 (layer 4 did not run)'),
  };
  const raw = weights.score * inputs.score + weights.uncertainty * inputs.uncertainty + weights.stability * inputs.stability;
  return { final: Math.min(1, Math.max(0, raw)), inputs, weights, absent };
}

/** Deterministic pick of the audit share: the same sample id is picked on every replay and every machine. */
export function inAuditShare(sampleId: string, share: number): boolean {
  if (share <= 0) return false;
  const h = createHash('sha256').update(`audit\n${sampleId}`).digest();
  return h.readUInt32BE(0) / 0x1_0000_0000 < share;
}

/** A would-be-accepted sample: accepted, unless it falls in the audit share or an alerted annotator's share. */
function acceptUnlessSampled(d: { sampleId: string; alertedAnnotators?: string[]; policy: Pick<QcPolicy, 'auditShare'> & { layer4: Pick<QcPolicy['layer4'], 'alertReviewShare'> } }): { disposition: Disposition; reason: DispositionReason } {
  if (inAuditShare(d.sampleId, d.policy.auditShare)) return { disposition: 'review', reason: 'audit' };
  // A separate hash stream, so the alert share is drawn independently of the audit share.
  if (d.alertedAnnotators?.length && inAuditShare(`alert\n${d.sampleId}`, d.policy.layer4.alertReviewShare)) return { disposition: 'review', reason: 'annotator_alert' };
  return { disposition: 'accepted', reason: 'confident' };
}

export interface DispositionInput {
  sampleId: string;
  layer1Passed: boolean;
  /** Undefined when layer 2 did not run (the sample failed layer 1). */
  layer2Passed?: boolean;
  /** Layer 3 ran but could not judge the sample (model unavailable, input the adapter refuses, NaN output). */
  layer3Failed?: boolean;
  /** Annotators of this sample under a layer-4 decay alert. */
  alertedAnnotators?: string[];
  final?: number;
  policy: Pick<QcPolicy, 'fusion' | 'auditShare'> & { layer4: Pick<QcPolicy['layer4'], 'alertReviewShare'> };
}

/**
 * The rules, in order: layer-1 failure → rejected; layer-2 conflict → review; layer 3 unable to judge →
 * review; final ≥ accept threshold → accepted, or review when the sample falls in the audit share, or in
 * the larger share for annotators under a decay alert; ≥ review threshold → review; else resample.
 */
export function decideDisposition(d: DispositionInput): { disposition: Disposition; reason: DispositionReason } {
  if (!d.layer1Passed) return { disposition: 'rejected', reason: 'layer1_failed' };
  if (d.layer2Passed === false) return { disposition: 'review', reason: 'layer2_conflict' };
  if (d.layer3Failed) return { disposition: 'review', reason: 'layer3_error' };
  const final = d.final ?? 0;
  if (final >= d.policy.fusion.acceptThreshold) return acceptUnlessSampled(d);
  if (final >= d.policy.fusion.reviewThreshold) return { disposition: 'review', reason: 'uncertain' };
  return { disposition: 'resample', reason: 'low_confidence' };
}

/** The two reasons both dispositions (linear and risk) give in the same words: the findings of layers 1 and 3 say the rest. */
const LAYER1_FAILED: Finding = { layer: 5, pointer: '', rule: 'disposition.layer1_failed', message: 'rejected: layer-1 compliance failed (see its findings)' };
const LAYER3_ERROR: Finding = { layer: 5, pointer: '', rule: 'disposition.layer3_error', message: 'review: the layer-3 model could not judge this sample (see its findings)' };

/** What layer 5 tells a reviewer: which rule decided, and which inputs were stand-ins. */
export function layer5Findings(reason: DispositionReason, fusion: Fusion | undefined, policy: QcPolicy, layer2Rules: string[], alertedAnnotators: string[] = []): Finding[] {
  const out: Finding[] = [];
  const final = fusion ? fusion.final.toFixed(3) : '';
  switch (reason) {
    case 'layer1_failed': out.push({ ...LAYER1_FAILED }); break;
    case 'layer2_conflict': out.push({ layer: 5, pointer: '', rule: 'disposition.layer2_conflict', message: `review: annotators conflict (${layer2Rules.join(', ')})` }); break;
    case 'layer3_error': out.push({ ...LAYER3_ERROR }); break;
    case 'annotator_alert': out.push({ layer: 5, pointer: '', rule: 'disposition.annotator_alert', message: `review: confidence ${final} would accept, but ${alertedAnnotators.join(', ')} ${alertedAnnotators.length > 1 ? 'are' : 'is'} under a quality-decay alert (${(policy.layer4.alertReviewShare * 100).toFixed(0)}% of their samples are reviewed)` }); break;
    case 'audit': out.push({ layer: 5, pointer: '', rule: 'disposition.audit', message: `review: confidence ${final} would accept, but the sample is in the ${(policy.auditShare * 100).toFixed(1)}% audit share` }); break;
    case 'uncertain': out.push({ layer: 5, pointer: '', rule: 'disposition.uncertain', message: `review: confidence ${final} is below accept ${policy.fusion.acceptThreshold}` }); break;
    case 'low_confidence': out.push({ layer: 5, pointer: '', rule: 'disposition.low_confidence', message: `resample: confidence ${final} is below review ${policy.fusion.reviewThreshold}` }); break;
    case 'confident': break;
  }
  for (const a of fusion?.absent ?? []) out.push({ layer: 5, pointer: `/fusion/${a.input}`, rule: 'fusion.input_absent', message: `${a.input} absent; used ${a.usedInstead}` });
  return out;
}

/**
 * The acceptance threshold of a batch under `fusion.mode = risk`: the largest probability of being wrong
 * τ ≤ `cap` such that accepting every sample at or under τ keeps the expected share of wrong labels among
 * them ≤ `target` (each sample weighted by `weights`: its labels under `per: label`). Sorted ascending, a
 * prefix's mean only grows, so the first prefix over target ends it. −1 when not even the safest sample qualifies.
 */
export function acceptanceThreshold(risks: number[], target: number, cap: number, weights?: number[]): number {
  const items = risks.map((r, i) => ({ r, w: weights?.[i] ?? 1 })).filter((x) => x.r <= cap).sort((a, b) => a.r - b.r);
  let wrong = 0;
  let total = 0;
  let tau = -1;
  for (const x of items) {
    wrong += x.r * x.w;
    total += x.w;
    if (total > 0 && wrong / total > target) break;
    tau = x.r;
  }
  return tau;
}

/**
 * What the primary threshold is held against: the sample's probability of any wrong label, or its
 * expected share of wrong labels (`per: label`), with the labels it weighs, and the likeliest wrong label
 * (`maxSampleRisk` caps it: a coin-toss entity among a hundred sure ones still goes to a person).
 */
export function primaryRisk(risk: SampleRisk, per: QcPolicy['fusion']['risk']['per']): { rate: number; weight: number; worst: number } {
  if (per === 'sample') return { rate: risk.primary, weight: 1, worst: risk.primary };
  const { expectedWrong, labels, worst } = labelRisk(risk);
  return { rate: labels > 0 ? expectedWrong / labels : 0, weight: labels, worst };
}

export interface RiskThresholds {
  primary: number;
  attributes: number;
}

/**
 * A batch's thresholds: primary labels against `targetErrorRate` (capped at `maxSampleRisk`), attributes
 * against `attributeErrorRate` (a sample's attribute vote is accepted while its winner is the likelier
 * value, capped at 0.5).
 */
export function batchThresholds(risks: SampleRisk[], policy: QcPolicy['fusion']['risk']): RiskThresholds {
  const primary = risks.map((r) => primaryRisk(r, policy.per)).filter((p) => p.worst <= policy.maxSampleRisk);
  return {
    primary: acceptanceThreshold(primary.map((p) => p.rate), policy.targetErrorRate, policy.maxSampleRisk, primary.map((p) => p.weight)),
    attributes: acceptanceThreshold(risks.map((r) => r.attributes), policy.attributeErrorRate, 0.5),
  };
}

/** Whether a sample's risk puts it over the batch's thresholds (or it has none): what `uncertain` means. */
export function overThreshold(risk: SampleRisk | undefined, t: RiskThresholds, policy: Pick<QcPolicy['fusion']['risk'], 'per' | 'maxSampleRisk'>): boolean {
  if (!risk) return true;
  const p = primaryRisk(risk, policy.per);
  return p.rate > t.primary || p.worst > policy.maxSampleRisk || risk.attributes > t.attributes;
}

/**
 * The samples a review budget turns away: of those sent to people for their risk, all but the `budget`
 * likeliest wrong. A person's review settles the likeliest errors first; a sample only slightly in doubt
 * is the one a few more labels most likely settle.
 */
export function overReviewBudget(uncertain: Array<{ id: string; pWrong: number }>, budget: number): Set<string> {
  const keep = Math.max(0, Math.floor(budget));
  return new Set([...uncertain].sort((a, b) => b.pWrong - a.pWrong || (a.id < b.id ? -1 : 1)).slice(keep).map((u) => u.id));
}

/**
 * The alerted annotators whose labels matter in this sample: those who disagree with its consensus, or all
 * of them when fewer than two other annotators agree with it throughout (their labels are then needed to
 * settle it). Where two others settle the sample and the alerted annotator agrees, reviewing it would
 * tell nothing about the sample or about the annotator.
 */
export function alertsThatMatter(alerted: string[], tallies: Record<string, { compared: number; agreed: number }> | null | undefined): string[] {
  if (alerted.length === 0) return [];
  const t = tallies ?? {};
  const dissenting = alerted.filter((a) => t[a] && t[a].agreed < t[a].compared);
  if (dissenting.length > 0) return dissenting;
  const settlers = Object.entries(t).filter(([a, x]) => !alerted.includes(a) && x.compared > 0 && x.agreed === x.compared).length;
  return settlers >= 2 ? [] : alerted;
}

/** One layer-1-passed sample of a batch as layer 5 finds it: layer 2's risk, the layer-3 model's probability of the consensus class. */
export interface BatchRiskRow {
  id: string;
  risk: SampleRisk | null;
  modelP: number | null;
  /** No blocking layer-2 finding and no layer-3 failure: the risk alone can decide. */
  eligible: boolean;
}

export interface BatchRiskPlan {
  risks: Map<string, SampleRisk>;
  threshold: RiskThresholds;
  overBudget: Set<string>;
}

/**
 * A batch's decisions under `fusion.mode = risk`, before any sample is decided: each sample's risk (the
 * layer-3 model folded in, then recalibrated against reviewers), the batch's thresholds over the samples
 * the risk may decide, and those its review budget turns away.
 */
export function planBatchRisks(rows: BatchRiskRow[], policy: QcPolicy, classCount: number, recalibration: Recalibration): BatchRiskPlan {
  const risks = new Map<string, SampleRisk>();
  const candidates: Array<{ id: string; risk: SampleRisk }> = [];
  for (const r of rows) {
    if (!r.risk) continue;
    // Recombined from the fields, so a row written before the risk groups existed reads the same way.
    const stored = combineRisks(r.risk.fields, r.risk.classPosterior, r.risk.contested);
    const risk = recalibrated(r.modelP === null ? stored : withModel(stored, r.modelP, classCount, policy.fusion.risk.modelWeight), recalibration);
    risks.set(r.id, risk);
    if (r.eligible && (risk.classPosterior === undefined || risk.classPosterior >= policy.fusion.risk.resampleBelow)) candidates.push({ id: r.id, risk });
  }
  const threshold = batchThresholds(candidates.map((c) => c.risk), policy.fusion.risk);
  const uncertain = candidates.filter((c) => overThreshold(c.risk, threshold, policy.fusion.risk)).map((c) => ({ id: c.id, pWrong: c.risk.pWrong }));
  return { risks, threshold, overBudget: overReviewBudget(uncertain, policy.fusion.risk.reviewBudget * rows.length) };
}

export interface RiskDispositionInput {
  sampleId: string;
  layer1Passed: boolean;
  /** Layer-2 findings no vote can settle (ontology violations, plugin conflicts). */
  blocking: string[];
  layer3Failed?: boolean;
  alertedAnnotators?: string[];
  risk?: SampleRisk;
  /** The batch's acceptance thresholds (acceptanceThreshold) for primary labels and for attributes. */
  threshold: RiskThresholds;
  /** The batch's review budget is spent before this sample (overReviewBudget). */
  overBudget?: boolean;
  policy: Pick<QcPolicy, 'fusion' | 'auditShare'> & { layer4: Pick<QcPolicy['layer4'], 'alertReviewShare'> };
}

/**
 * The rules under `fusion.mode = risk`, in order: layer-1 failure → rejected; a blocking layer-2 finding or
 * a layer-3 failure → review; a best class under the posterior floor → resample (a person could only guess
 * too); risk at or under the batch threshold → accepted, or review for the audit share and the larger share
 * of annotators under a decay alert; else review, or resample once the batch's review budget is spent.
 */
export function decideByRisk(d: RiskDispositionInput): { disposition: Disposition; reason: DispositionReason } {
  if (!d.layer1Passed) return { disposition: 'rejected', reason: 'layer1_failed' };
  if (d.blocking.length > 0) return { disposition: 'review', reason: 'layer2_conflict' };
  if (d.layer3Failed) return { disposition: 'review', reason: 'layer3_error' };
  if (d.risk?.classPosterior !== undefined && d.risk.classPosterior < d.policy.fusion.risk.resampleBelow) return { disposition: 'resample', reason: 'low_confidence' };
  if (!overThreshold(d.risk, d.threshold, d.policy.fusion.risk)) return acceptUnlessSampled(d);
  if (d.overBudget) return { disposition: 'resample', reason: 'review_budget' };
  return { disposition: 'review', reason: 'uncertain' };
}

/** What layer 5 tells a reviewer under `fusion.mode = risk`: the probability, the threshold, and the fields that carry the risk. */
export function riskFindings(reason: DispositionReason, risk: SampleRisk | undefined, threshold: RiskThresholds, policy: QcPolicy, blocking: string[], alertedAnnotators: string[] = []): Finding[] {
  const p = risk ? risk.pWrong.toFixed(4) : '?';
  const out: Finding[] = [];
  const tau = (t: number): string => (t < 0 ? 'none (no sample of the batch is safe enough)' : t.toFixed(4));
  // A recalibrated estimate names the annotator models' own beside it: a reviewer sees how far reviews moved it.
  const primary = !risk ? '' : risk.raw ? `${risk.primary.toFixed(4)} (${risk.raw.primary.toFixed(4)} by the annotator models, recalibrated against decided reviews)` : risk.primary.toFixed(4);
  const perLabel = policy.fusion.risk.per === 'label' && risk ? primaryRisk(risk, 'label') : undefined;
  const over = !risk ? 'no risk estimate (layer 2 did not run)'
    : perLabel && (perLabel.rate > threshold.primary || perLabel.worst > policy.fusion.risk.maxSampleRisk)
      ? `${(perLabel.rate * perLabel.weight).toFixed(2)} of its ${perLabel.weight} labels are expected wrong (${perLabel.rate.toFixed(4)} a label; the likeliest wrong ${perLabel.worst.toFixed(4)}), over this batch's acceptance threshold ${tau(threshold.primary)} or the per-label cap ${policy.fusion.risk.maxSampleRisk} (target error rate ${policy.fusion.risk.targetErrorRate} of labels)`
    : !perLabel && risk.primary > threshold.primary
      ? `probability the labels are wrong ${primary} is above this batch's acceptance threshold ${tau(threshold.primary)} (target error rate ${policy.fusion.risk.targetErrorRate}, per-sample cap ${policy.fusion.risk.maxSampleRisk})`
      : `probability an attribute is wrong ${risk.attributes.toFixed(4)} is above this batch's attribute threshold ${tau(threshold.attributes)} (attribute error rate ${policy.fusion.risk.attributeErrorRate})`;
  switch (reason) {
    case 'layer1_failed': out.push({ ...LAYER1_FAILED }); break;
    case 'layer2_conflict': out.push({ layer: 5, pointer: '', rule: 'disposition.layer2_conflict', message: `review: labels break the ontology (${blocking.join(', ')}); a vote cannot settle that` }); break;
    case 'layer3_error': out.push({ ...LAYER3_ERROR }); break;
    case 'low_confidence': out.push({ layer: 5, pointer: '', rule: 'disposition.low_confidence', message: `resample: the best class has probability ${risk?.classPosterior?.toFixed(3)}, under ${policy.fusion.risk.resampleBelow}; the labels carry too little information to settle` }); break;
    case 'uncertain': out.push({ layer: 5, pointer: '', rule: 'disposition.uncertain', message: `review: ${over}` }); break;
    case 'review_budget': out.push({ layer: 5, pointer: '', rule: 'disposition.review_budget', message: `resample: ${over}, but the batch's review budget (${(policy.fusion.risk.reviewBudget * 100).toFixed(1)}% of its samples) went to likelier errors; more labels should settle it` }); break;
    case 'audit': out.push({ layer: 5, pointer: '', rule: 'disposition.audit', message: `review: probability wrong ${p} would accept, but the sample is in the ${(policy.auditShare * 100).toFixed(1)}% audit share` }); break;
    case 'annotator_alert': out.push({ layer: 5, pointer: '', rule: 'disposition.annotator_alert', message: `review: probability wrong ${p} would accept, but ${alertedAnnotators.join(', ')} ${alertedAnnotators.length > 1 ? 'are' : 'is'} under a quality-decay alert and ${alertedAnnotators.length > 1 ? 'their' : 'the'} labels count here (${(policy.layer4.alertReviewShare * 100).toFixed(0)}% of such samples are reviewed)` }); break;
    case 'confident': break;
  }
  if (reason !== 'layer1_failed' && reason !== 'confident') {
    for (const f of [...(risk?.fields ?? [])].sort((a, b) => b.pWrong - a.pWrong).slice(0, 3).filter((f) => f.pWrong >= 0.001)) {
      out.push({ layer: 5, pointer: `/risk/${f.field}`, rule: 'risk.field', message: `${f.field}: wrong with probability ${f.pWrong.toFixed(4)} — ${f.why}` });
    }
  }
  return out;
}
