import { withTransaction } from '../src/clients/pg';
import { bucketsForBatch, evaluateSubject, sampleDecayFindings, STREAM, type Breach, type SubjectSummary } from '../src/qc/decay';
import { batchSampleQuality, insertBuckets, newestBuckets, saveWindow, syncAlerts } from '../src/store/quality';
import { type ActivityDeps, type BatchKey, batchPolicy, heartbeat, requireProject } from './deps';

export interface DecaySummary {
  subjects: number;
  /** Subjects (annotators, or '*' for the stream) with an open alert after this batch, with the metrics. */
  alerts: Array<{ subject: string; metrics: string[] }>;
  stability: number;
  ks: { d: number; p: number; method: string } | null;
}

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
      const agreement = await deps.pool.query<{ annotator: string; compared: number; agreed: number }>(
        'SELECT annotator, compared, agreed FROM annotator_agreement WHERE project_id = $1 AND batch_id = $2', [input.project, input.batchId],
      );
      const { rows: [clock] } = await deps.pool.query<{ now: Date }>('SELECT now() AS now');
      const now = clock!.now;
      const buckets = bucketsForBatch(samples, new Map(agreement.rows.map((a) => [a.annotator, a])), now);
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
        await withTransaction(deps.pool, async (c) => {
          for (const r of samples.slice(i, i + PAGE)) {
            if (!r.l1Passed) continue;
            const verdict = sampleDecayFindings(stream, alerted, r.annotations, recentSince);
            await c.query(
              `INSERT INTO qc_results (sample_id, layer, passed, score, findings, details) VALUES ($1, 4, $2, $3, $4, $5)
               ON CONFLICT (sample_id, layer) DO UPDATE SET passed = EXCLUDED.passed, score = EXCLUDED.score, findings = EXCLUDED.findings, details = EXCLUDED.details`,
              [r.id, verdict.passed, stream.stability, JSON.stringify(verdict.findings),
                JSON.stringify({ stability: stream.stability, alertedAnnotators: verdict.alertedAnnotators, ks: stream.ks, note: stream.note ?? null })],
            );
          }
        });
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
