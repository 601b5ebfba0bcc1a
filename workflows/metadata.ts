import type { TypedSearchAttributes } from '@temporalio/common';
import { QC_KIND, QC_MODEL, QC_PROJECT, QC_STAGE, type QcKind } from './search-attributes';

/**
 * What an operator sees of a workflow in the Temporal UI before opening it: a one-line summary, details,
 * and the search attributes the README's saved views filter on (QcKind keeps thousands of reviews from
 * burying the pipeline). Set by whoever starts the workflow; one function per kind so every starter agrees.
 */
export interface StartMetadata {
  staticSummary: string;
  staticDetails: string;
  typedSearchAttributes: NonNullable<ConstructorParameters<typeof TypedSearchAttributes>[0]>;
}

/** A workflow's current details (Temporal UI, query-only, never history): counts as `key value · …`. */
export function countsLine(counts: Record<string, number | undefined>): string {
  return Object.entries(counts).filter(([, v]) => v !== undefined && v !== 0).map(([k, v]) => `${k} ${v}`).join(' · ') || 'nothing yet';
}

const kind = (k: QcKind) => ({ key: QC_KIND, value: k });

export function intakeMetadata(project: string): StartMetadata {
  return {
    staticSummary: `Intake of ${project}`,
    staticDetails: `Long-running: queues the batches submitted to project ${project} (signals submitBatch, submitSamples; update stageSamples) and runs a few at once as qcBatch children. Query \`stats\` for its counts and recent errors.`,
    typedSearchAttributes: [{ key: QC_PROJECT, value: project }, { key: QC_STAGE, value: 'intake' }, kind('intake')],
  };
}

export function batchMetadata(project: string, batchId: string, stagingKey: string): StartMetadata {
  return {
    staticSummary: `Batch ${batchId} of ${project}`,
    staticDetails: `Staged at ${stagingKey}; runs QC layers 1–5, starts reviews and notifies resamples. Query \`progress\` for its stage, counts and malformed lines.`,
    typedSearchAttributes: [{ key: QC_PROJECT, value: project }, { key: QC_STAGE, value: 'staging' }, kind('batch')],
  };
}

export function reviewMetadata(r: { project: string; sampleId: string; externalId: string; reason: string; batchId?: string; slaSeconds: number }): StartMetadata {
  return {
    staticSummary: `Review of ${r.externalId} (${r.project}): ${r.reason}`,
    staticDetails: `Sample ${r.sampleId}, external id ${r.externalId}, project ${r.project}${r.batchId ? `, batch ${r.batchId}` : ''}. Waits for a reviewer (SLA ${r.slaSeconds} s, then escalates). Query \`reviewState\` for its round; decide on the review server's /tasks page.`,
    typedSearchAttributes: [{ key: QC_PROJECT, value: r.project }, { key: QC_STAGE, value: 'review' }, kind('review')],
  };
}

export function releaseMetadata(project: string, version: string): StartMetadata {
  return {
    staticSummary: `Release ${version} of ${project}`,
    staticDetails: `Writes the accepted, unreleased samples of ${project} as JSONL + Arrow + manifest under releases/${project}/${version}/ in MinIO.`,
    typedSearchAttributes: [{ key: QC_PROJECT, value: project }, kind('release')],
  };
}

export function quantizationMetadata(model: string, methods: readonly string[], budget: { top1: number; cosine: number; latencyRatio?: number }): StartMetadata {
  return {
    staticSummary: `Quantize ${model}`,
    staticDetails: `Tries ${methods.join(', ')} on ${model} within top-1 ${budget.top1} and cosine ${budget.cosine} of the float model${budget.latencyRatio === undefined ? '' : `, at most ${budget.latencyRatio} times as slow`}; registers the smallest that fits as a child version. Query \`quantizationProgress\`.`,
    typedSearchAttributes: [{ key: QC_MODEL, value: model }, kind('quantization')],
  };
}

export function rolloutMetadata(project: string, candidate: string, flag: string): StartMetadata {
  return {
    staticSummary: `Rollout of ${candidate} in ${project}`,
    staticDetails: `Ramps ${candidate} against the control of ${project} through flag ${flag}, promoting or rolling back by an always-valid sequential test. Signals pause, resume, abort, forcePromote ({"by", "reason"}); query \`rolloutState\`.`,
    typedSearchAttributes: [{ key: QC_PROJECT, value: project }, { key: QC_MODEL, value: candidate }, kind('rollout')],
  };
}
