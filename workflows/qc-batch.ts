import { ActivityFailure, patched, proxyActivities, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { countsLine } from './metadata';
import type { Activities, InferenceActivities } from '../activities';
import { batchProgressQuery, batchResamplesQuery, ZERO_COUNTS, type BatchCounts, type BatchProgress, type BatchResamples, type Layer3Plan, type PlausibilitySummary, type QcBatchInput } from './definitions';
import { CPU_ACTIVITY_OPTIONS, INFERENCE_ACTIVITY_OPTIONS, WEBHOOK_ACTIVITY_OPTIONS } from './activity-options';
import { QC_PROJECT, QC_STAGE } from './search-attributes';

const act = proxyActivities<Activities>(CPU_ACTIVITY_OPTIONS);
const webhook = proxyActivities<Activities>(WEBHOOK_ACTIVITY_OPTIONS);

/**
 * One staged batch through the QC layers: stage → layer 1 → layer 2 (+ plugins) → layer 3 (inference queue,
 * when the project has a model) → layer 4 (decay windows and alerts) → layer 5 (fusion and disposition) → resample webhook.
 */
export async function qcBatch(input: QcBatchInput): Promise<BatchCounts> {
  const progress: BatchProgress = { stage: 'staging', counts: { ...ZERO_COUNTS } };
  const resamples: BatchResamples = { total: 0, items: [], webhook: null };
  setHandler(batchProgressQuery, () => progress);
  setHandler(batchResamplesQuery, () => resamples);
  const stage = (s: BatchProgress['stage']): void => {
    progress.stage = s;
    setCurrentDetails(`Stage ${s}\n\n${countsLine({ ...progress.counts })}`);
    upsertSearchAttributes([{ key: QC_PROJECT, value: input.project }, { key: QC_STAGE, value: s }]);
  };
  stage('staging');
  const { malformedLines, ...staged } = await act.stageBatch(input);
  progress.counts = { ...progress.counts, ...staged };
  if (malformedLines?.length) progress.malformedLines = malformedLines;

  stage('layer1');
  const key = { project: input.project, batchId: input.batchId };
  await act.runCompliance(key);

  stage('layer2');
  const agreement = await act.runConsistency(key);
  progress.agreement = { conflicts: agreement.conflicts, fleissKappa: agreement.fleissKappa, krippendorffAlpha: agreement.krippendorffAlpha, pluginErrors: agreement.pluginErrors.length };

  // Pinned before layer 3 starts (by the intake, or here): the choice is in history, so replays keep it.
  const plan = input.layer3 !== undefined ? input.layer3 : await act.pinLayer3Models({ project: input.project });
  if (plan) {
    stage('layer3');
    const inference = proxyActivities<InferenceActivities>({ ...INFERENCE_ACTIVITY_OPTIONS, taskQueue: plan.taskQueue });
    // A gray release scores each arm's samples with its own models, one call per arm. patched: batches
    // started before arms existed score everything with the control.
    const rollout = plan.rollout && patched('layer3-rollout-arms') ? plan.rollout : undefined;
    if (!rollout) progress.inference = await inference.scorePlausibility({ ...key, plan });
    else {
      const arms: Record<string, PlausibilitySummary> = {};
      for (const a of rollout.arms.filter((x) => x.share > 0)) {
        arms[a.variant] = await inference.scorePlausibility({ ...key, plan: { ...plan, models: a.variant === 'control' ? plan.models : rollout.candidates[a.variant] ?? [] }, arm: a.variant });
      }
      progress.inference = mergeArms(arms, plan);
    }
  }

  stage('layer4');
  progress.decay = await act.trackQualityDecay(key);

  stage('layer5');
  const routed = await act.fuseAndDispose(key);
  // `rejected` counts samples layer 1 refused; lines refused before becoming samples are `malformed`, so
  // lines = staged + duplicates + malformed and staged = accepted + rejected + review + resample.
  progress.counts = { ...progress.counts, ...routed.counts };
  progress.audited = routed.audited;
  Object.assign(resamples, routed.resamples);

  // patched: batches already past layer 5 when this step shipped replay without it.
  if (routed.counts.review > 0 && patched('human-review')) {
    stage('review');
    // Reviews outlive the batch: each is its own workflow, started by id so a retry starts none twice.
    progress.reviews = await act.startReviews(key);
  }

  if (routed.resamples.total > 0) {
    stage('notify');
    await webhook.notifyResamples(key).then(
      (r) => { if (r.webhook) resamples.webhook = 'notified'; },
      async (err: unknown) => {
        // An unreachable receiver must not hold back the batch: the requests stay listed as un-notified.
        const message = err instanceof ActivityFailure && err.cause ? err.cause.message : String(err);
        await act.recordBatchFinding({ ...key, source: 'webhook', rule: 'webhook.failed', message });
        resamples.webhook = 'failed';
      },
    );
  }

  await act.finishBatch({ ...key, counts: progress.counts });
  stage('done');
  return progress.counts;
}

/** One summary of a batch's layer 3 from its arms' summaries, each arm's own counts kept under `arms`. */
function mergeArms(arms: Record<string, PlausibilitySummary>, plan: Layer3Plan): PlausibilitySummary {
  const all = Object.values(arms);
  const sum = (k: 'scored' | 'disagreements' | 'failed'): number => all.reduce((n, a) => n + a[k], 0);
  return {
    scored: sum('scored'), disagreements: sum('disagreements'), failed: sum('failed'),
    modelError: all.map((a) => a.modelError).find((e) => e !== null) ?? null,
    providers: [...new Set(all.flatMap((a) => a.providers))],
    cache: all[all.length - 1]!.cache,
    arms: Object.fromEntries(Object.entries(arms).map(([variant, a]) => [variant, {
      models: (variant === 'control' ? plan.models : plan.rollout?.candidates[variant] ?? []).map((m) => m.id).join('+'),
      scored: a.scored, disagreements: a.disagreements, failed: a.failed,
    }])),
  };
}
