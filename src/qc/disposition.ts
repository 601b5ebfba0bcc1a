import { createHash } from 'node:crypto';
import type { Finding } from './findings';
import type { QcPolicy } from './policy';

export type Disposition = 'accepted' | 'review' | 'resample' | 'rejected';

/** Why a sample got its disposition; stored with the layer-5 result and shown to reviewers. */
export type DispositionReason = 'layer1_failed' | 'layer2_conflict' | 'confident' | 'audit' | 'uncertain' | 'low_confidence';

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

export interface DispositionInput {
  sampleId: string;
  layer1Passed: boolean;
  /** Undefined when layer 2 did not run (the sample failed layer 1). */
  layer2Passed?: boolean;
  final?: number;
  policy: Pick<QcPolicy, 'fusion' | 'auditShare'>;
}

/**
 * The rules, in order: layer-1 failure → rejected; layer-2 conflict → review; final ≥ accept threshold →
 * accepted (or review when the sample falls in the audit share); ≥ review threshold → review; else resample.
 */
export function decideDisposition(d: DispositionInput): { disposition: Disposition; reason: DispositionReason } {
  if (!d.layer1Passed) return { disposition: 'rejected', reason: 'layer1_failed' };
  if (d.layer2Passed === false) return { disposition: 'review', reason: 'layer2_conflict' };
  const final = d.final ?? 0;
  if (final >= d.policy.fusion.acceptThreshold) {
    return inAuditShare(d.sampleId, d.policy.auditShare) ? { disposition: 'review', reason: 'audit' } : { disposition: 'accepted', reason: 'confident' };
  }
  if (final >= d.policy.fusion.reviewThreshold) return { disposition: 'review', reason: 'uncertain' };
  return { disposition: 'resample', reason: 'low_confidence' };
}

/** What layer 5 tells a reviewer: which rule decided, and which inputs were stand-ins. */
export function layer5Findings(reason: DispositionReason, fusion: Fusion | undefined, policy: QcPolicy, layer2Rules: string[]): Finding[] {
  const out: Finding[] = [];
  const final = fusion ? fusion.final.toFixed(3) : '';
  switch (reason) {
    case 'layer1_failed': out.push({ layer: 5, pointer: '', rule: 'disposition.layer1_failed', message: 'rejected: layer-1 compliance failed (see its findings)' }); break;
    case 'layer2_conflict': out.push({ layer: 5, pointer: '', rule: 'disposition.layer2_conflict', message: `review: annotators conflict (${layer2Rules.join(', ')})` }); break;
    case 'audit': out.push({ layer: 5, pointer: '', rule: 'disposition.audit', message: `review: confidence ${final} would accept, but the sample is in the ${(policy.auditShare * 100).toFixed(1)}% audit share` }); break;
    case 'uncertain': out.push({ layer: 5, pointer: '', rule: 'disposition.uncertain', message: `review: confidence ${final} is below accept ${policy.fusion.acceptThreshold}` }); break;
    case 'low_confidence': out.push({ layer: 5, pointer: '', rule: 'disposition.low_confidence', message: `resample: confidence ${final} is below review ${policy.fusion.reviewThreshold}` }); break;
    case 'confident': break;
  }
  for (const a of fusion?.absent ?? []) out.push({ layer: 5, pointer: `/fusion/${a.input}`, rule: 'fusion.input_absent', message: `${a.input} absent; used ${a.usedInstead}` });
  return out;
}
