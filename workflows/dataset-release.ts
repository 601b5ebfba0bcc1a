import { ApplicationFailure, patched, proxyActivities, upsertSearchAttributes } from '@temporalio/workflow';
import { CHECK_INPUTS, releaseInputProblem } from './inputs';
import type { Activities } from '../activities';
import type { DatasetReleaseInput, ReleaseSummary } from './definitions';
import { CPU_ACTIVITY_OPTIONS } from './activity-options';
import { QC_PROJECT, QC_STAGE } from './search-attributes';

const act = proxyActivities<Activities>(CPU_ACTIVITY_OPTIONS);

/**
 * Snapshot → files → publish. The snapshot claims samples for this release id in one transaction, files are
 * written to deterministic keys, and publishing is a guarded state change, so each accepted sample is released
 * exactly once however often any step is retried.
 */
export async function datasetRelease(input: DatasetReleaseInput): Promise<ReleaseSummary> {
  // patched: releases started before inputs were checked replay as they ran.
  const bad = patched(CHECK_INPUTS) ? releaseInputProblem(input) : undefined;
  if (bad) throw ApplicationFailure.nonRetryable(bad, 'BadInput');
  upsertSearchAttributes([{ key: QC_PROJECT, value: input.project }, { key: QC_STAGE, value: 'snapshot' }]);
  const snap = await act.snapshotRelease(input);
  if (snap.published) return act.getReleaseSummary({ releaseId: snap.releaseId });
  upsertSearchAttributes([{ key: QC_STAGE, value: 'write' }]);
  const files = await act.writeReleaseFiles({ releaseId: snap.releaseId });
  upsertSearchAttributes([{ key: QC_STAGE, value: 'publish' }]);
  return act.publishRelease({ releaseId: snap.releaseId, files });
}
