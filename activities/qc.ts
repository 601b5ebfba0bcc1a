import { withTransaction } from '../src/clients/pg';
import { objectExists } from '../src/clients/minio';
import { checkCompliance, compiledFor, ProjectSpecError } from '../src/qc/compliance';
import { alertsThatMatter, decideByRisk, decideDisposition, fuseConfidence, layer5Findings, planBatchRisks, riskFindings, type BatchRiskPlan } from '../src/qc/disposition';
import { fitRecalibration, IDENTITY, type Recalibration } from '../src/qc/stats/recalibration';
import { recalibrationRows } from '../src/store/review';
import type { QcPolicy } from '../src/qc/policy';
import { listResamples, type ResampleRequest } from '../src/store/resamples';
import { auditedCount, batchRiskRows, layer1Counts, uncheckedPage, undecidedPage, writeDispositions, writeLayer1Results } from '../src/store/qc-results';
import { batchStatusCounts, markBatchDone, pinnedRecalibration } from '../src/store/batches';
import type { IngestSample, MediaRef } from '../src/ingest/envelope';
import type { BatchCounts } from '../workflows/definitions';
import { type ActivityDeps, type BatchKey, badInput, batchPolicy, heartbeat, requireProject } from './deps';

const PAGE = 500;

/** Resample requests a batch result carries by value; the rest are listed from Postgres (CLI, API). */
const RESAMPLE_EXAMPLES = 20;

export interface DispositionSummary {
  counts: Pick<BatchCounts, 'accepted' | 'rejected' | 'review' | 'resample'>;
  audited: number;
  resamples: { total: number; items: ResampleRequest[] };
}

export function qcActivities(deps: ActivityDeps) {
  async function missingMediaKeys(media: MediaRef[]): Promise<string[]> {
    const keys = media.flatMap((m) => ('key' in m ? [m.key] : []));
    const exists = await Promise.all(keys.map((k) => objectExists(deps.store, k)));
    return keys.filter((_, i) => !exists[i]);
  }

  /** The batch's plan under `fusion.mode = risk`, recalibrated against the reviews decided before it was first judged. */
  async function batchRisks(input: BatchKey, policy: QcPolicy, classCount: number): Promise<BatchRiskPlan & { recalibration: Recalibration }> {
    const window = policy.fusion.risk.recalibrationReviews;
    const recalibration = window > 0
      ? await pinnedRecalibration(deps.pool, input.project, input.batchId, async () => fitRecalibration(await recalibrationRows(deps.pool, input.project, window)))
      : IDENTITY;
    return { ...planBatchRisks(await batchRiskRows(deps.pool, input.project, input.batchId), policy, classCount, recalibration), recalibration };
  }

  return {
    /** Layer 1 on every not-yet-checked sample of the batch, a page per transaction; re-runs skip checked ones. */
    async runCompliance(input: BatchKey): Promise<{ passed: number; failed: number }> {
      const project = await requireProject(deps, input.project);
      let compiled;
      try {
        compiled = compiledFor({ jsonSchema: project.jsonSchema, regexRules: project.regexRules });
      } catch (err) {
        if (err instanceof ProjectSpecError) throw badInput(`project ${input.project}: ${err.message}`);
        throw err;
      }
      let done = 0;
      for (;;) {
        const rows = await uncheckedPage(deps.pool, input.project, input.batchId, PAGE);
        if (rows.length === 0) break;
        const results = await Promise.all(rows.map(async (r) => {
          const sample: IngestSample = { externalId: r.external_id, payload: r.payload, media: r.media, annotations: r.annotations };
          return { id: r.id, ...checkCompliance(sample, compiled, await missingMediaKeys(r.media)) };
        }));
        await withTransaction(deps.pool, (c) => writeLayer1Results(c, results));
        done += rows.length;
        heartbeat({ checked: done });
      }
      return layer1Counts(deps.pool, input.project, input.batchId);
    },

    /**
     * Layer 5 on every checked sample of the batch: fuses layer-3 score, uncertainty and layer-4 stability
     * (stand-ins when absent, named in the findings), applies the disposition rules and the audit share,
     * records resample requests, and returns the batch's counts per status with a few resample examples.
     */
    async fuseAndDispose(input: BatchKey): Promise<DispositionSummary> {
      const project = await requireProject(deps, input.project);
      const policy = await batchPolicy(deps, input, project);
      const batch = policy.fusion.mode === 'risk' ? await batchRisks(input, policy, project.ontology.classes?.length ?? 2) : undefined;
      for (;;) {
        const rows = await undecidedPage(deps.pool, input.project, input.batchId, PAGE);
        if (rows.length === 0) break;
        const decided = rows.map((r) => {
          const alerted = r.alerted ?? [];
          if (batch) {
            const risk = batch.risks.get(r.id);
            const blocking = r.blocking ?? [];
            const watched = alertsThatMatter(alerted, r.tallies);
            const d = decideByRisk({ sampleId: r.id, layer1Passed: r.l1, blocking, layer3Failed: r.l3_failed, alertedAnnotators: watched, risk, threshold: batch.threshold, overBudget: batch.overBudget.has(r.id), policy });
            return {
              r, d, findings: riskFindings(d.reason, risk, batch.threshold, policy, blocking, watched), confidence: risk ? 1 - risk.pWrong : null,
              details: { mode: 'risk', disposition: d.disposition, reason: d.reason, audit: d.reason === 'audit', risk: risk ?? null, threshold: batch.threshold, targetErrorRate: policy.fusion.risk.targetErrorRate, recalibration: batch.recalibration },
            };
          }
          const fusion = r.l1
            ? fuseConfidence({ score: r.score ?? undefined, uncertainty: r.uncertainty === null ? undefined : Number(r.uncertainty), stability: r.stability ?? undefined, agreement: r.agreement ?? 1 }, policy.fusion.weights)
            : undefined;
          const d = decideDisposition({ sampleId: r.id, layer1Passed: r.l1, layer2Passed: r.l2 ?? undefined, layer3Failed: r.l3_failed, alertedAnnotators: alerted, final: fusion?.final, policy });
          return {
            r, d, findings: layer5Findings(d.reason, fusion, policy, r.l2_rules ?? [], alerted), confidence: fusion?.final ?? null,
            details: { mode: 'linear', disposition: d.disposition, reason: d.reason, audit: d.reason === 'audit', fusion: fusion ?? null, thresholds: { accept: policy.fusion.acceptThreshold, review: policy.fusion.reviewThreshold } },
          };
        });
        await withTransaction(deps.pool, (c) => writeDispositions(c, input.project, input.batchId, decided.map((x) => ({
          id: x.r.id, externalId: x.r.external_id, disposition: x.d.disposition, confidence: x.confidence, findings: x.findings, details: x.details, modelVersion: x.r.model_version,
        }))));
        heartbeat();
      }
      const by = await batchStatusCounts(deps.pool, input.project, input.batchId);
      return {
        // Samples released meanwhile were accepted by this batch.
        counts: { accepted: (by.accepted ?? 0) + (by.released ?? 0), rejected: by.rejected ?? 0, review: by.review ?? 0, resample: by.resample ?? 0 },
        audited: await auditedCount(deps.pool, input.project, input.batchId),
        resamples: await listResamples(deps.pool, { project: input.project, batchId: input.batchId, limit: RESAMPLE_EXAMPLES }),
      };
    },

    /** Returns the batch's time from staging to done (the batch latency metric; the workflow ignores it). */
    async finishBatch(input: BatchKey & { counts: BatchCounts }): Promise<{ seconds: number } | null> {
      return markBatchDone(deps.pool, input.project, input.batchId, input.counts);
    },
  };
}
