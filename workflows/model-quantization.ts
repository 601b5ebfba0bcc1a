import { ActivityFailure, ApplicationFailure, patched, proxyActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { Budget, Candidate, EvaluationActivities, ModelActivities } from '../activities/models';
import type { EvaluationMetrics } from '../src/quantize/evaluate';
import { RECURRENT_OPS, type Method } from '../src/quantize/types';
import { quantizationProgressQuery, type ModelQuantizationInput, type QuantizationProgress } from './definitions';
import { QC_MODEL, QC_STAGE } from './search-attributes';

export const DEFAULT_BUDGET: Budget = { top1: 0.99, cosine: 0.99 };

/**
 * How many times slower than its fp32 parent a candidate may run unless the budget says otherwise: the
 * smallest file is no use if it is that slow (int8-static runs PaddleOCR's classifier, whose BatchNorms
 * stay unfolded, ×3.9 slower). Tiny models pay a fixed cost per quantized op (the fixtures: ×1.2–1.5).
 */
const DEFAULT_LATENCY_RATIO = 2;

/** Most to least compressed. */
const ORDER: Method[] = ['int4', 'int8-static', 'int8-dynamic', 'fp16'];

/** Histories record what evaluations returned then: the replayed stand-ins of test/fixtures/histories have no latency. */
const latencyOf = (m: EvaluationMetrics): { latencyRatio?: number } => ((m.latencyMs as EvaluationMetrics['latencyMs'] | undefined) ? { latencyRatio: m.latencyMs.ratio } : {});

const fits = (m: EvaluationMetrics, b: Budget): boolean => m.top1Agreement >= b.top1 && m.cosine.mean >= b.cosine && (b.latencyRatio === undefined || (latencyOf(m).latencyRatio ?? Infinity) <= b.latencyRatio);

/**
 * `quantize/{tenant}/{name}/{version}`: analyze → quantize each applicable method (models queue; int8-static
 * and int4 fitted to the version's calibration set, int8-static else to its golden inputs; a model with
 * Convs also tries int4 with its Convs in 4-bit blocks, one with LSTM/GRU/RNN layers int4 with those) and
 * evaluate it against the version's golden inputs (inference queue) → register the smallest candidate
 * within the budget (accuracy, and latency against fp32's). When none fits, the best integer candidate is retried with its most
 * error-sensitive nodes kept in fp32 (1, 2, 4, … of them). No fit at all fails the workflow, saying
 * what came closest; nothing is registered then.
 */
export async function modelQuantization(input: ModelQuantizationInput): Promise<QuantizationProgress> {
  // Runs started before latency counted replay without it.
  const budget: Budget = { ...DEFAULT_BUDGET, ...(patched('quantization-latency-budget') ? { latencyRatio: DEFAULT_LATENCY_RATIO } : {}), ...input.budget };
  const progress: QuantizationProgress = { modelId: input.modelId, stage: 'analyze', budget, candidates: [] };
  setHandler(quantizationProgressQuery, () => progress);
  const stage = (s: QuantizationProgress['stage']): void => {
    progress.stage = s;
    upsertSearchAttributes([{ key: QC_MODEL, value: input.modelId }, { key: QC_STAGE, value: s }]);
  };
  const models = proxyActivities<ModelActivities>({
    taskQueue: input.modelsQueue, startToCloseTimeout: '2 hours', heartbeatTimeout: '10 minutes',
    retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', nonRetryableErrorTypes: ['BadInput'] },
  });
  const evaluation = proxyActivities<EvaluationActivities>({
    taskQueue: input.inferenceQueue, startToCloseTimeout: '1 hour',
    retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', nonRetryableErrorTypes: ['BadInput'] },
  });
  stage('analyze');
  const analysis = await models.analyzeModelVersion({ modelId: input.modelId });
  progress.analysis = { ops: analysis.ops, parameters: analysis.parameters, opset: analysis.opset, applicable: analysis.applicable };
  if (!analysis.hasGolden) throw ApplicationFailure.nonRetryable(`model version ${input.modelId} has no golden inputs; re-register it with --golden golden.jsonl`, 'BadInput');
  const methods = ORDER.filter((m) => analysis.applicable.includes(m) && (!input.methods || input.methods.includes(m)));
  if (methods.length === 0) throw ApplicationFailure.nonRetryable(`no quantization method applies to ${input.modelId} (ops: ${Object.keys(analysis.ops).join(', ')}; opset ${analysis.opset})`, 'BadInput');

  // `wide`: which layers beyond MatMul take 4 bits (int4 only); absent in histories from before they could.
  type Wide = { int4Conv?: boolean; int4Recurrent?: boolean };
  const tryCandidate = async (method: Method, excludeNodes: string[] = [], wide: Wide = {}): Promise<{ candidate: Candidate; metrics: EvaluationMetrics } | undefined> => {
    stage('quantize');
    const { int4Conv, int4Recurrent } = wide;
    const candidate = await models.quantizeCandidate({ modelId: input.modelId, method, blockSize: input.blockSize, excludeNodes, ...(int4Conv ? { int4Conv } : {}), ...(int4Recurrent ? { int4Recurrent } : {}) });
    stage('evaluate');
    let metrics: EvaluationMetrics;
    try {
      metrics = await evaluation.evaluateModelCandidate({ modelId: input.modelId, candidateKey: candidate.key });
    } catch (err) {
      // A candidate that crashes onnxruntime is unusable, not a reason to stop: another method may work.
      // Histories from before that (the run failed on the crash) replay through the throw.
      const crashed = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'CandidateCrashed';
      if (!crashed || !patched('quantization-candidate-crash')) throw err;
      progress.candidates.push({ method, ...(int4Conv ? { int4Conv } : {}), ...(int4Recurrent ? { int4Recurrent } : {}), excludeNodes, bytes: candidate.bytes, weightRatio: candidate.weightRatio, top1: 0, cosine: 0, fits: false, failure: err.cause.message });
      return undefined;
    }
    progress.candidates.push({ method, ...(int4Conv ? { int4Conv } : {}), ...(int4Recurrent ? { int4Recurrent } : {}), excludeNodes, bytes: candidate.bytes, weightRatio: candidate.weightRatio, top1: metrics.top1Agreement, cosine: metrics.cosine.mean, ...latencyOf(metrics), fits: fits(metrics, budget) });
    return { candidate, metrics };
  };

  const tried: Array<{ candidate: Candidate; metrics: EvaluationMetrics }> = [];
  for (const method of methods) {
    const r = await tryCandidate(method);
    if (r && r.candidate.quantizedNodes > 0) tried.push(r);
    // A conv net also tries its Convs in 4-bit blocks (--int4-conv): int4 alone leaves them at 8 bits.
    // Runs recorded before this candidate existed replay without it.
    if (method === 'int4' && (analysis.ops.Conv ?? 0) > 0 && patched('quantization-int4-conv')) {
      const c = await tryCandidate('int4', [], { int4Conv: true });
      if (c && c.candidate.quantizedNodes > 0) tried.push(c);
    }
    // …and a recurrent net with its LSTM/GRU/RNN weights in 4-bit blocks (--int4-recurrent); likewise. A
    // Loop or Scan whose body multiplies weights (a scripted cell) takes the same flag, from a later patch.
    const recurrent = RECURRENT_OPS.some((op) => (analysis.ops[op] ?? 0) > 0);
    const looped = !recurrent && (analysis.iteratedWeights ?? 0) > 0;
    if (method === 'int4' && ((recurrent && patched('quantization-int4-recurrent')) || (looped && patched('quantization-int4-loop')))) {
      const c = await tryCandidate('int4', [], { int4Recurrent: true });
      if (c && c.candidate.quantizedNodes > 0) tried.push(c);
    }
  }
  let chosen = tried.filter((t) => fits(t.metrics, budget)).sort((a, b) => a.candidate.bytes - b.candidate.bytes)[0];
  if (!chosen) {
    const integer = tried.filter((t) => t.candidate.method !== 'fp16').sort((a, b) => b.metrics.cosine.mean - a.metrics.cosine.mean)[0];
    if (integer) {
      stage('rank');
      const { int4Conv, int4Recurrent } = integer.candidate;
      const wide: Wide = { ...(int4Conv ? { int4Conv } : {}), ...(int4Recurrent ? { int4Recurrent } : {}) };
      const ranked = await models.rankSensitiveNodes({ modelId: input.modelId, method: integer.candidate.method, ...wide });
      progress.sensitiveNodes = ranked.slice(0, 10);
      for (let k = 1; k < ranked.length && !chosen; k *= 2) {
        const r = await tryCandidate(integer.candidate.method, ranked.slice(0, k).map((x) => x.node), wide);
        if (r && fits(r.metrics, budget)) chosen = r;
      }
    }
  }
  if (!chosen) {
    const best = progress.candidates.slice().sort((a, b) => b.cosine - a.cosine)[0];
    stage('failed');
    throw ApplicationFailure.nonRetryable(
      `no candidate of ${input.modelId} meets the budget (top-1 ≥ ${budget.top1}, cosine ≥ ${budget.cosine}${budget.latencyRatio === undefined ? '' : `, latency ≤ ×${budget.latencyRatio} fp32's`}); closest: ${best ? `${best.method} top-1 ${best.top1.toFixed(4)} cosine ${best.cosine.toFixed(5)}${budget.latencyRatio === undefined || best.latencyRatio === undefined ? '' : ` latency ×${best.latencyRatio.toFixed(2)}`}` : 'none'}. Loosen the budget or keep more nodes in fp32`,
      'NoCandidateFits',
    );
  }
  stage('register');
  progress.chosen = { ...(await models.registerQuantized({ modelId: input.modelId, candidate: chosen.candidate, metrics: chosen.metrics, budget })), method: chosen.candidate.method, ...(chosen.candidate.int4Conv ? { int4Conv: true } : {}), ...(chosen.candidate.int4Recurrent ? { int4Recurrent: true } : {}), bytes: chosen.candidate.bytes };
  stage('done');
  return progress;
}
