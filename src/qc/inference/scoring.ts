import type { Finding } from '../findings';

/** Numerically stable softmax of one row of logits. */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  const exps = Array.from(logits, (v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** Shannon entropy divided by log(K): 0 for a one-hot distribution, 1 for the uniform one. */
export function normalizedEntropy(p: number[]): number {
  if (p.length < 2) return 0;
  let h = 0;
  for (const x of p) if (x > 0) h -= x * Math.log(x);
  return Math.min(1, Math.max(0, h / Math.log(p.length)));
}

export interface ModelPrediction {
  /** Which model version (for ensemble members). */
  modelVersion: string;
  logits: ArrayLike<number>;
}

export interface Plausibility {
  passed: boolean;
  /** Probability (ensemble mean) of the consensus label; null when the model cannot judge the sample. */
  score: number | null;
  /** Normalised entropy of the (mean) predictive distribution: total uncertainty. */
  uncertainty: number | null;
  /** Ensemble only: normalised mutual information (epistemic part of the uncertainty) and the std of the members' consensus-label probability. */
  epistemic?: number;
  spread?: number;
  top: Array<{ label: string; p: number }>;
  findings: Finding[];
}

const f = (p: number): string => p.toFixed(3);

/**
 * Layer 3 for one sample: the (ensemble-averaged) softmax, the probability of the consensus label, the
 * uncertainty, and — when the model's top label differs — a finding naming the model's top-k labels.
 * A multi-label consensus scores the probability mass on its labels. NaN or infinite logits give a
 * finding instead of a score.
 */
export function scoreSample(predictions: ModelPrediction[], labels: string[], consensus: string[], topK: number): Plausibility {
  const bad = predictions.find((m) => Array.from(m.logits).some((v) => !Number.isFinite(v)));
  if (bad) {
    return { passed: false, score: null, uncertainty: null, top: [], findings: [{ layer: 3, pointer: '', rule: 'layer3.nan_output', message: `model ${bad.modelVersion} produced non-finite logits for this sample; check the model with \`qcflow model evaluate\` before trusting its scores` }] };
  }
  const members = predictions.map((m) => softmax(m.logits));
  const mean = labels.map((_, k) => members.reduce((s, p) => s + p[k]!, 0) / members.length);
  const uncertainty = normalizedEntropy(mean);
  const top = labels.map((label, k) => ({ label, p: mean[k]! })).sort((a, b) => b.p - a.p).slice(0, Math.max(1, topK));
  const out: Plausibility = { passed: true, score: null, uncertainty, top, findings: [] };
  if (members.length > 1) {
    const meanEntropy = members.reduce((s, p) => s + normalizedEntropy(p), 0) / members.length;
    out.epistemic = Math.max(0, uncertainty - meanEntropy);
  }
  if (consensus.length === 0) {
    out.findings.push({ layer: 3, pointer: '', rule: 'layer3.no_consensus_label', message: 'no consensus class to score; layer 3 reports the model\'s top labels only' });
    return out;
  }
  const idx = consensus.map((c) => labels.indexOf(c));
  const unknown = consensus.filter((_, i) => idx[i]! < 0);
  if (unknown.length) {
    out.findings.push({ layer: 3, pointer: '', rule: 'layer3.label_not_in_model', message: `the model does not know ${unknown.map((u) => JSON.stringify(u)).join(', ')} (its labels: ${labels.join(', ')}); register a model trained on this ontology` });
    return out;
  }
  const massOf = (p: number[]): number => Math.min(1, idx.reduce((s, k) => s + p[k]!, 0));
  out.score = massOf(mean);
  if (members.length > 1) {
    const ps = members.map(massOf);
    out.spread = Math.sqrt(ps.reduce((s, p) => s + (p - out.score!) ** 2, 0) / ps.length);
  }
  const predicted = top.slice(0, consensus.length).map((t) => t.label);
  if (!consensus.every((c) => predicted.includes(c))) {
    out.passed = false;
    out.findings.push({
      layer: 3, pointer: '', rule: 'layer3.model_disagrees',
      message: `model gives ${consensus.join('+')} p=${f(out.score)}; its top labels: ${top.map((t) => `${t.label} ${f(t.p)}`).join(', ')}`,
    });
  }
  return out;
}

/** One sample's layer-3 result, as qc_results keeps it. */
export interface Layer3Result {
  id: string;
  passed: boolean;
  score: number | null;
  findings: Finding[];
  details: Record<string, unknown>;
}

/** A model's half of a batch: a prediction or a refusal per row, and onnxruntime's compute time per row. */
export interface MemberRun {
  modelVersion: string;
  predictions: Array<{ logits?: ArrayLike<number>; finding?: Finding }>;
  msPerRow: number;
}

/**
 * Layer 3's results for a batch every member ran: a row an adapter refused keeps the refusal; the rest are
 * scored against the consensus. `tag` (a gray release's arm and flag) goes into every result's details.
 */
export function judgedResults(rows: Array<{ id: string; consensus: string[] | null }>, runs: MemberRun[], labels: string[], topK: number, tag: Record<string, unknown> = {}): Layer3Result[] {
  // Every member computes every row: a sample's model time is the members' time per row, summed.
  const inferenceMs = +runs.reduce((ms, m) => ms + m.msPerRow, 0).toFixed(4);
  return rows.map((r, i) => {
    const refused = runs.map((m) => m.predictions[i]!.finding).find(Boolean);
    if (refused) return { id: r.id, passed: false, score: null, findings: [refused], details: { error: refused.message, ...tag } };
    const p = scoreSample(runs.map((m) => ({ modelVersion: m.modelVersion, logits: m.predictions[i]!.logits! })), labels, r.consensus ?? [], topK);
    return { id: r.id, passed: p.passed, score: p.score, findings: p.findings, details: { uncertainty: p.uncertainty, epistemic: p.epistemic, spread: p.spread, top: p.top, consensus: r.consensus ?? [], inferenceMs, ...tag } };
  });
}

/** Results for samples no model could judge: each goes to review with the reason. */
export function unjudgedResults(ids: string[], message: string, tag: Record<string, unknown> = {}): Layer3Result[] {
  return ids.map((id) => ({ id, passed: false, score: null, findings: [{ layer: 3, pointer: '', rule: 'layer3.model_unavailable', message: `${message}; layer 3 could not judge this sample, so it goes to review` }], details: { error: message, ...tag } }));
}
