import type { DecaySummary } from '../workflows/definitions';
import { withTransaction } from '../src/clients/pg';
import { bucketsForBatch, evaluateSubject, sampleDecayFindings, STREAM, type Breach, type SubjectSummary } from '../src/qc/decay';
import { batchAnnotatorAgreement } from '../src/store/batches';
import { upsertQcResults } from '../src/store/qc-results';
import { batchSampleQuality, databaseNow, insertBuckets, newestBuckets, saveWindow, syncAlerts } from '../src/store/quality';
import { type ActivityDeps, type BatchKey, batchPolicy, heartbeat, requireProject } from './deps';

const PAGE = 1000;

export function decayActivities(deps: ActivityDeps) {
  return {
    /**
     * Layer 4 for a batch: adds its buckets (stream and per annotator, placed by when their samples were
     * labelled), recomputes each touched subject's short and reference windows from the newest buckets in
     * data time only (so an older batch finishing late cannot clear a live alert), syncs the decay alerts,
     * and writes each sample's stability and alert findings for layer 5.
     */
    async trackQualityDecay(input: BatchKey): Promise<DecaySummary> {
      const policy = (await batchPolicy(deps, input, await requireProject(deps, input.project))).layer4;
      const samples = await batchSampleQuality(deps.pool, input.project, input.batchId);
      const agreement = await batchAnnotatorAgreement(deps.pool, input.project, input.batchId);
      const buckets = bucketsForBatch(samples, new Map(agreement.map((a) => [a.annotator, a])), await databaseNow(deps.pool));
      await insertBuckets(deps.pool, input.project, input.batchId, buckets);

      const summaries = new Map<string, SubjectSummary>();
      const alerted = new Map<string, Breach[]>();
      const recentSince = new Map<string, string | undefined>();
      for (const subject of buckets.keys()) {
        const summary = evaluateSubject(await newestBuckets(deps.pool, input.project, subject, policy.window), policy);
        await withTransaction(deps.pool, async (c) => {
          await saveWindow(c, input.project, subject, input.batchId, summary);
          await syncAlerts(c, input.project, subject, input.batchId, summary.breaches);
        });
        summaries.set(subject, summary);
        if (summary.breaches.length) {
          alerted.set(subject, summary.breaches);
          recentSince.set(subject, summary.recentSince);
        }
        heartbeat({ subjects: summaries.size });
      }
      const stream = summaries.get(STREAM) ?? evaluateSubject([], policy);

      for (let i = 0; i < samples.length; i += PAGE) {
        const page = samples.slice(i, i + PAGE).filter((r) => r.l1Passed).map((r) => {
          const verdict = sampleDecayFindings(stream, alerted, r.annotations, recentSince);
          return {
            id: r.id, passed: verdict.passed, score: stream.stability, findings: verdict.findings,
            details: { stability: stream.stability, alertedAnnotators: verdict.alertedAnnotators, ks: stream.ks, note: stream.note ?? null },
          };
        });
        await upsertQcResults(deps.pool, 4, page);
      }
      const result: DecaySummary = {
        subjects: summaries.size,
        alerts: [...alerted].map(([subject, b]) => ({ subject, metrics: b.map((x) => x.metric) })),
        stability: stream.stability,
        ks: stream.ks && { d: stream.ks.d, p: stream.ks.p, method: stream.ks.method },
      };
      if (result.alerts.length) deps.log.warn({ project: input.project, batchId: input.batchId, alerts: result.alerts }, 'quality-decay alerts');
      return result;
    },
  };
}
