import { proxyActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { batchProgressQuery, ZERO_COUNTS, type BatchCounts, type BatchProgress, type QcBatchInput } from './definitions';
import { CPU_ACTIVITY_OPTIONS } from './activity-options';
import { QC_PROJECT, QC_STAGE } from './search-attributes';

const act = proxyActivities<Activities>(CPU_ACTIVITY_OPTIONS);

/** One staged batch through the QC layers: stage → layer 1 → disposition. Later layers slot in between. */
export async function qcBatch(input: QcBatchInput): Promise<BatchCounts> {
  const progress: BatchProgress = { stage: 'staging', counts: { ...ZERO_COUNTS } };
  setHandler(batchProgressQuery, () => progress);
  const stage = (s: BatchProgress['stage']): void => {
    progress.stage = s;
    upsertSearchAttributes([{ key: QC_PROJECT, value: input.project }, { key: QC_STAGE, value: s }]);
  };
  stage('staging');
  const staged = await act.stageBatch(input);
  progress.counts = { ...progress.counts, ...staged };

  stage('layer1');
  const key = { project: input.project, batchId: input.batchId };
  await act.runCompliance(key);

  stage('disposition');
  const routed = await act.applyDispositions(key);
  // Lines rejected before becoming samples count as rejected too: nothing submitted goes uncounted.
  progress.counts = { ...progress.counts, ...routed, rejected: routed.rejected + staged.malformed };

  await act.finishBatch({ ...key, counts: progress.counts });
  stage('done');
  return progress.counts;
}
