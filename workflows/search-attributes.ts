import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Custom search attributes, registered by the dev server at start so operators can filter in the UI. */
export const SEARCH_ATTRIBUTE_TYPES = {
  QcProject: 'Keyword',
  QcStage: 'Keyword',
  QcModel: 'Keyword',
  QcKind: 'Keyword',
} as const;

export const QC_PROJECT = defineSearchAttributeKey('QcProject', SearchAttributeType.KEYWORD);
export const QC_STAGE = defineSearchAttributeKey('QcStage', SearchAttributeType.KEYWORD);
export const QC_MODEL = defineSearchAttributeKey('QcModel', SearchAttributeType.KEYWORD);
/**
 * What a workflow is, set when it starts: `intake`, `batch`, `review`, `release`, `quantization` or `rollout`. Reviews
 * number in the thousands; `QcKind != "review"` keeps the pipeline in view (README: saved views).
 */
export const QC_KIND = defineSearchAttributeKey('QcKind', SearchAttributeType.KEYWORD);
export type QcKind = 'intake' | 'batch' | 'review' | 'release' | 'quantization' | 'rollout';
