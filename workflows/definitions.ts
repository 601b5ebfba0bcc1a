import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { IngestSample } from '../src/ingest/envelope';
import type { ResampleRequest } from '../src/store/resamples';
import type { MalformedLine } from '../src/store/batches';
import type { Arm } from '../src/rollout/bucketing';
import type { PinnedModel } from '../src/store/models';
import type { CacheStats } from '../src/clients/onnx-sessions';
import type { QcPolicy } from '../src/qc/policy';
import type { ReviewDecision } from '../src/review/decisions';

/** A JSONL file already staged in MinIO, to be QC'd as one batch. */
export interface BatchRef {
  batchId: string;
  stagingKey: string;
}

export interface SubmitSamplesArgs {
  samples: IngestSample[];
}

/** Per-status counts of one batch (or summed over many). */
export interface BatchCounts {
  lines: number;
  staged: number;
  duplicates: number;
  malformed: number;
  accepted: number;
  rejected: number;
  review: number;
  resample: number;
}

export const ZERO_COUNTS: BatchCounts = { lines: 0, staged: 0, duplicates: 0, malformed: 0, accepted: 0, rejected: 0, review: 0, resample: 0 };

export function addCounts(a: BatchCounts, b: BatchCounts): BatchCounts {
  const out = { ...a };
  for (const k of Object.keys(out) as Array<keyof BatchCounts>) out[k] += b[k];
  return out;
}

export interface IntakeStats {
  project: string;
  queued: number;
  running: number;
  completed: number;
  failed: number;
  duplicateBatches: number;
  counts: BatchCounts;
  /** How many times this intake has continued as new. */
  generation: number;
  recentErrors: string[];
  /** Signals dropped for a bad shape (their reasons are in recentErrors). */
  refusedSignals?: number;
}

/** What projectIntake carries across continue-as-new. */
export interface IntakeState {
  queue: BatchRef[];
  seenBatchIds: string[];
  stats: IntakeStats;
}

export interface IntakeInput {
  project: string;
  /** Continue-as-new after this many history events even if the server has not suggested it (tests lower it). */
  maxHistoryEvents?: number;
  /** qcBatch children run at once (default 4). */
  maxConcurrentBatches?: number;
  state?: IntakeState;
}

export interface QcBatchInput {
  project: string;
  batchId: string;
  stagingKey: string;
  /**
   * Layer-3 models pinned when the batch was queued (null: the project has none). When absent the batch
   * pins them itself as its first step; either way a replay or a retry never switches model.
   */
  layer3?: Layer3Plan | null;
}

export interface BatchAgreementSummary {
  conflicts: number;
  fleissKappa: number | null;
  krippendorffAlpha: number | null;
  pluginErrors: number;
}

export interface BatchProgress {
  stage: 'staging' | 'layer1' | 'layer2' | 'layer3' | 'layer4' | 'layer5' | 'review' | 'notify' | 'done';
  counts: BatchCounts;
  /** The first lines refused before they became samples (counts.malformed has them all), with why. */
  malformedLines?: MalformedLine[];
  /** Set once layer 2 has run. */
  agreement?: BatchAgreementSummary;
  /** Set once layer 3 has run: scored samples, disagreements, failures, providers used and the session cache counters. */
  inference?: PlausibilitySummary;
  /** Set once layer 4 has run: the stream's stability, its KS test, and the subjects under a decay alert. */
  decay?: DecaySummary;
  /** Accepted-by-confidence samples sent to review as the audit share. */
  audited?: number;
  /** Set once the batch's review samples have humanReview workflows. */
  reviews?: BatchReviews;
}

/** The batch's resample requests: the total and the first few (the full list: `qcflow resamples`). */
export interface BatchResamples {
  total: number;
  items: ResampleRequest[];
  /** Whether the project's webhook took them; null when the project has none. */
  webhook: 'notified' | 'failed' | null;
}

export interface DatasetReleaseInput {
  project: string;
  version: string;
}

export interface ReleaseFileInfo {
  key: string;
  sha256: string;
  bytes: number;
  rows?: number;
}

export interface ReleaseSummary {
  project: string;
  version: string;
  releaseId: string;
  sampleCount: number;
  manifestKey: string;
  files: { jsonl: ReleaseFileInfo; arrow: ReleaseFileInfo; manifest: ReleaseFileInfo };
}

/** The layer-3 models a batch is scored with, pinned when it leaves the intake's queue. */
export interface Layer3Plan {
  models: PinnedModel[];
  taskQueue: string;
  /** Set when a configured model reference did not resolve: the batch's samples get a finding saying so. */
  unresolved?: string;
  /**
   * A gray release pinned with the models: the flag's salt and arms as they were when the batch left the
   * queue, and the model versions of each candidate arm (`control` scores with `models`). Each sample is
   * scored by its arm only (src/rollout/bucketing.ts on the sample id).
   */
  rollout?: { flag: string; salt: string; arms: Arm[]; candidates: Record<string, PinnedModel[]> };
  /** Why the project's rollout flag was not applied to this batch (missing, switched off, a candidate that did not resolve). */
  rolloutSkipped?: string;
}

export interface PlausibilitySummary {
  /** Under a gray release: each arm's own counts and the model versions that scored it. */
  arms?: Record<string, { models: string; scored: number; disagreements: number; failed: number }>;
  scored: number;
  disagreements: number;
  /** Samples the model could not judge (bad input, NaN output, model unavailable). */
  failed: number;
  modelError: string | null;
  providers: string[];
  cache: CacheStats;
}

export interface DecaySummary {
  subjects: number;
  /** Subjects (annotators, or '*' for the stream) with an open alert after this batch, with the metrics. */
  alerts: Array<{ subject: string; metrics: string[] }>;
  stability: number;
  ks: { d: number; p: number; method: string } | null;
}

/** What humanReview carries: ids and the review policy pinned when the review started. */
export interface HumanReviewInput {
  project: string;
  sampleId: string;
  /** Layer 5's reason for sending the sample to review. */
  reason: string;
  review: QcPolicy['review'];
  /** The queue the human-task activity waits on (`qc-review`). */
  reviewQueue: string;
}

/** What a human review ended with. */
export interface ReviewOutcome {
  sampleId: string;
  taskId: string;
  decision: ReviewDecision;
  decidedBy: string;
  /** The sample's status after the decision. */
  status: 'accepted' | 'rejected' | 'resample';
}

/** Where one sample's review stands (query `reviewState` on `review/{sample}`). */
export interface ReviewState {
  round: number;
  reason: string;
  audience: 'reviewers' | 'leads';
  escalations: number;
  /** `undo_window`: decided, and the decider may still take it back (HumanReviewInput.review.undoSeconds). */
  status: 'waiting' | 'undo_window' | 'applying' | 'done';
  /** Decisions taken back so far. */
  undos?: number;
  outcome?: ReviewOutcome;
  /** Times this round's task was dispatched again because an earlier dispatch was never recorded. */
  redispatches?: number;
}

/** What a batch did about its review samples: humanReview workflows started now, or found already running. */
export interface BatchReviews {
  started: number;
  existing: number;
}

export interface ModelQuantizationInput {
  /** `tenant/name/version` of a registered fp32 version with golden inputs. */
  modelId: string;
  /**
   * Budget against fp32 on the golden inputs: accuracy (default top-1 ≥ 0.99, cosine ≥ 0.99) and
   * `latencyRatio`, the candidate's median latency over fp32's (default at most 2).
   */
  budget?: { top1?: number; cosine?: number; latencyRatio?: number };
  /** Only these methods (default: every applicable one). */
  methods?: Array<'int4' | 'int8-static' | 'int8-dynamic' | 'fp16'>;
  blockSize?: number;
  /** Where quantization runs (`models`) and where evaluation runs (`qc-inference`). */
  modelsQueue: string;
  inferenceQueue: string;
}

export interface QuantizationProgress {
  modelId: string;
  stage: 'analyze' | 'quantize' | 'evaluate' | 'rank' | 'register' | 'done' | 'failed';
  budget: { top1: number; cosine: number; latencyRatio?: number };
  analysis?: { ops: Record<string, number>; parameters: number; opset: number; applicable: string[] };
  /** `failure`: the candidate crashed onnxruntime in evaluation (top1 and cosine are 0 then). `latencyRatio`: its median latency over fp32's. */
  candidates: Array<{ method: string; int4Conv?: boolean; int4Recurrent?: boolean; excludeNodes: string[]; bytes: number; weightRatio: number; top1: number; cosine: number; latencyRatio?: number; fits: boolean; failure?: string }>;
  sensitiveNodes?: Array<{ node: string; cosineLoss: number }>;
  chosen?: { id: string; version: string; method: string; int4Conv?: boolean; int4Recurrent?: boolean; bytes: number };
}

export const submitSamplesSignal = defineSignal<[SubmitSamplesArgs]>('submitSamples');
export const submitBatchSignal = defineSignal<[BatchRef]>('submitBatch');
/**
 * `submitSamples` as an Update: a sender that must know at once whether its samples were taken gets the
 * refusal (the field and the rule) as the update's error, and nothing enters the history; else the
 * inline batch they were staged as.
 */
/** A reviewer takes back the decision of `taskId` while its undo window is open; refused (by the validator) otherwise, so it happens once. */
export interface UndoRequest {
  taskId: string;
  user: string;
}
export const undoDecisionUpdate = defineUpdate<{ undone: true }, [UndoRequest]>('undoDecision');
/** `rollout/{tenant}/{name}/{version}`: a candidate model version ramped against a project's control through a flag. */
export interface ModelRolloutInput {
  project: string;
  /** The flag layer 3 splits the project's samples by (qcPolicy.layer3.rollout.flag). */
  flag: string;
  /** The candidate version id, tenant/name/version. */
  candidate: string;
  /** The candidate's share at each step; the last is 1 (default 0.05, 0.25, 0.5, 1). */
  steps?: number[];
  /** Outcomes each arm needs before any verdict (default 200). */
  minPerArm?: number;
  /** How far below the control the candidate's agreement may be (default 0.01: one point). */
  margin?: number;
  alpha?: number;
  /** Between checks of the arms' outcomes (default 60). */
  checkSeconds?: number;
}

export interface RolloutState {
  status: 'running' | 'paused' | 'held' | 'promoted' | 'rolled_back';
  step: number;
  share: number;
  checks: number;
  /** Per-arm outcomes and the verdict at the last check. */
  last: { arms: Array<{ variant: string; n: number; agreed: number; failed: number; reviewed?: number; overturned?: number; latencyP95Ms?: number | null }>; srmP: number | null; decision: string | null; estimate: number | null; interval: [number, number] | null; why: string } | null;
  /** Operator actions and automatic decisions, with who and why. */
  log: Array<{ at: string; what: string; by: string; why: string }>;
}

export const rolloutStateQuery = defineQuery<RolloutState>('rolloutState');
export const pauseRolloutSignal = defineSignal<[{ by: string; reason?: string }]>('pause');
export const resumeRolloutSignal = defineSignal<[{ by: string; reason?: string }]>('resume');
export const abortRolloutSignal = defineSignal<[{ by: string; reason: string }]>('abort');
export const forcePromoteSignal = defineSignal<[{ by: string; reason: string }]>('forcePromote');

export const stageSamplesUpdate = defineUpdate<BatchRef, [SubmitSamplesArgs]>('stageSamples');
export const intakeStatsQuery = defineQuery<IntakeStats>('stats');
export const batchProgressQuery = defineQuery<BatchProgress>('progress');
export const batchResamplesQuery = defineQuery<BatchResamples>('resamples');
export const reviewStateQuery = defineQuery<ReviewState>('reviewState');
export const quantizationProgressQuery = defineQuery<QuantizationProgress>('quantizationProgress');

export const workflowIds = {
  intake: (project: string) => `intake/${project}`,
  qcBatch: (project: string, batchId: string) => `qc/${project}/${batchId}`,
  release: (project: string, version: string) => `release/${project}/${version}`,
  review: (sampleId: string) => `review/${sampleId}`,
  quantize: (modelId: string) => `quantize/${modelId}`,
  rollout: (candidate: string) => `rollout/${candidate}`,
};
