import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Custom search attributes, registered by the dev server at start so operators can filter in the UI. */
export const SEARCH_ATTRIBUTE_TYPES = {
  QcProject: 'Keyword',
  QcStage: 'Keyword',
  QcModel: 'Keyword',
} as const;

export const QC_PROJECT = defineSearchAttributeKey('QcProject', SearchAttributeType.KEYWORD);
export const QC_STAGE = defineSearchAttributeKey('QcStage', SearchAttributeType.KEYWORD);
export const QC_MODEL = defineSearchAttributeKey('QcModel', SearchAttributeType.KEYWORD);
