import { withTransaction } from '../src/clients/pg';
import { ANNOTATIONS_OF_S, passedSampleAnnotations } from '../src/store/samples';
import { writeLayer2Results } from '../src/store/qc-results';
import { getObjectBufferIfExists } from '../src/clients/minio';
import { agreementOf, checkConsistency, mergeTallies, objectAccuracies, type AnnotatorLabels } from '../src/qc/consistency';
import { configurePlugins, runPlugins, type PluginSample } from '../src/qc/plugins/registry';
import type { QcPolicy } from '../src/qc/policy';
import { categoryCounts, fleissKappa, krippendorffAlphaNominal } from '../src/qc/stats/agreement';
import { oneCoinAccuracies } from '../src/qc/stats/one-coin';
import { attributeItems } from '../src/qc/consistency/attributes';
import { classPosterior, fitBatchReliability, type BatchFit } from '../src/store/reliability';
import { combineRisks } from '../src/qc/risk';
import { recordBatchFinding } from '../src/store/batches';
import type { MediaRef } from '../src/ingest/envelope';
import type { ProjectDefinition } from '../src/projects/definition';
import { type ActivityDeps, type BatchKey, batchPolicy, heartbeat, requireProject } from './deps';

const PAGE = 500;

export interface BatchAgreement {
  samples: number;
  conflicts: number;
  fleissKappa: number | null;
  krippendorffAlpha: number | null;
  /** Items that had class labels from two or more annotators (what kappa and alpha were computed over). */
  pairableItems: number;
  annotators: Record<string, { compared: number; agreed: number; rate: number; reliability?: number }>;
  pluginErrors: Array<{ plugin: string; message: string }>;
}

/** Single-label class votes per sample: what Dawid–Skene and the batch statistics take. */
function classVotes(anns: AnnotatorLabels[]): Array<{ annotator: string; value: string }> {
  return anns.flatMap((a) => (a.labels.classes?.length === 1 ? [{ annotator: a.annotator, value: a.labels.classes[0]! }] : []));
}

export function consistencyActivities(deps: ActivityDeps) {
  async function loadMedia(media: MediaRef[]): Promise<PluginSample['media']> {
    // Missing media is a layer-1 finding already, so it is simply absent here.
    return Promise.all(media.flatMap((m) => ('key' in m ? [m.key] : [])).map(async (key) => ({ key, bytes: await getObjectBufferIfExists(deps.store, key) })));
  }

  /**
   * What the batch says about its annotators: class votes (for Dawid–Skene), attribute accuracies (one-coin
   * EM over its attribute votes) and object accuracies (agreement of their boxes and spans).
   */
  async function batchEvidence(input: BatchKey, ontology: ProjectDefinition['ontology'], layer2: QcPolicy['layer2']): Promise<{ votes: Array<Array<{ annotator: string; value: string }>>; attributeWeights: Record<string, number>; objectWeights: Record<string, number> }> {
    const rows = await passedSampleAnnotations(deps.pool, input.project, input.batchId);
    return {
      votes: rows.map((r) => classVotes(r.annotations)),
      attributeWeights: oneCoinAccuracies(rows.flatMap((r) => attributeItems(r.annotations, ontology.attributes ?? {}))),
      objectWeights: objectAccuracies(rows, ontology, layer2),
    };
  }

  return {
    /**
     * Layer 2 and the layer-2 plugins on every layer-1-passed sample of the batch, a page per transaction
     * (re-runs skip pages already written). Fits annotator reliability first, then stores the batch's
     * kappa/alpha and per-annotator agreement.
     */
    async runConsistency(input: BatchKey): Promise<BatchAgreement> {
      const project = await requireProject(deps, input.project);
      const policy = await batchPolicy(deps, input, project);
      const plugins = configurePlugins(policy);
      const multi = project.ontology.multiLabel === true;
      const evidence = await batchEvidence(input, project.ontology, policy.layer2);
      const votesPerSample = multi ? [] : evidence.votes;
      const fit: BatchFit | undefined = multi || votesPerSample.every((v) => v.length === 0)
        ? undefined
        : await fitBatchReliability(deps.pool, input.project, input.batchId, votesPerSample, project.ontology.classes);
      const weights = fit?.weights ?? {};
      const pluginErrors: BatchAgreement['pluginErrors'] = [];
      let done = 0;
      for (;;) {
        const { rows } = await deps.pool.query<{ id: string; payload: Record<string, unknown>; media: MediaRef[]; annotations: AnnotatorLabels[] }>(
          `SELECT s.id, s.payload, s.media,
                  ${ANNOTATIONS_OF_S} AS annotations
           FROM samples s JOIN qc_results q1 ON q1.sample_id = s.id AND q1.layer = 1 AND q1.passed
           LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2
           WHERE s.project_id = $1 AND s.batch_id = $2 AND s.status = 'qc' AND q2.sample_id IS NULL ORDER BY s.id LIMIT $3`,
          [input.project, input.batchId, PAGE],
        );
        if (rows.length === 0) break;
        const needsMedia = plugins.some((p) => p.plugin.needsMedia);
        const samples: PluginSample[] = await Promise.all(rows.map(async (r) => ({
          sampleId: r.id, payload: r.payload, annotations: r.annotations, media: needsMedia ? await loadMedia(r.media) : [],
        })));
        const plugged = await runPlugins(plugins, samples, { project: input.project, ontology: project.ontology, weights });
        pluginErrors.push(...plugged.errors);
        const results = samples.map((s) => {
          const votes = classVotes(s.annotations);
          const posterior = fit && votes.length > 0 ? classPosterior(fit, votes) : undefined;
          const r = checkConsistency({ annotations: s.annotations, payload: s.payload, ontology: project.ontology, policy: policy.layer2, weights, attributeWeights: evidence.attributeWeights, objectWeights: evidence.objectWeights, classPosterior: posterior, ...(fit ? { classModel: (v) => classPosterior(fit, v) } : {}) });
          const pluginFindings = plugged.findings.get(s.sampleId) ?? [];
          const findings = [...r.findings, ...pluginFindings.filter((f) => f.layer === 2)];
          const pluginTallies = plugged.tallies.get(s.sampleId) ?? {};
          const tallies = Object.values(pluginTallies).reduce((acc, t) => mergeTallies(acc, t), structuredClone(r.tallies));
          // A plugin that measures agreement (sequence-labels) counts as one more label kind.
          const agreementByKind = { ...r.agreementByKind, ...Object.fromEntries(Object.entries(pluginTallies).map(([id, t]) => [id, agreementOf(t)])) };
          return {
            id: s.sampleId,
            layer1: pluginFindings.filter((f) => f.layer === 1),
            passed: findings.length === 0,
            score: Math.min(1, ...Object.values(agreementByKind)),
            findings,
            details: {
              consensus: { ...r.consensus, ...plugged.consensus.get(s.sampleId) },
              tallies,
              agreementByKind,
              risk: plugged.risks.has(s.sampleId) ? combineRisks([...r.risk.fields, ...plugged.risks.get(s.sampleId)!], r.risk.classPosterior) : r.risk,
              // A plugin finding its own risks do not weigh has no probability model, so a person settles it.
              blocking: [...new Set([...r.blocking, ...(plugged.blocking.get(s.sampleId) ?? [])])],
              ...(posterior ? { classPosterior: posterior } : {}),
              ...(plugged.scores.has(s.sampleId) ? { pluginScores: plugged.scores.get(s.sampleId) } : {}),
              ...(plugged.details.has(s.sampleId) ? { pluginDetails: plugged.details.get(s.sampleId) } : {}),
            },
          };
        });
        await withTransaction(deps.pool, (c) => writeLayer2Results(c, results));
        done += rows.length;
        heartbeat({ checked: done });
      }
      for (const e of pluginErrors) {
        deps.log.warn({ project: input.project, batchId: input.batchId, plugin: e.plugin, err: e.message }, 'QC plugin failed; its checks are missing from this batch');
        await recordBatchFinding(deps.pool, { ...input, source: `plugin:${e.plugin}`, rule: 'plugin.error', message: `plugin ${e.plugin} threw: ${e.message}` });
      }
      return storeBatchAgreement(input, fit, votesPerSample);
    },
  };

  async function storeBatchAgreement(input: BatchKey, fit: BatchFit | undefined, votes: Array<Array<{ annotator: string; value: string }>>): Promise<BatchAgreement> {
    // Read back rather than kept in memory: a retried activity skips pages whose plugin errors an earlier attempt recorded.
    const errors = await deps.pool.query<{ source: string; message: string }>(
      `SELECT source, message FROM batch_findings WHERE project_id = $1 AND batch_id = $2 AND rule = 'plugin.error' ORDER BY source`, [input.project, input.batchId],
    );
    const pluginErrors = errors.rows.map((r) => ({ plugin: r.source.replace(/^plugin:/, ''), message: r.message }));
    const per = await deps.pool.query<{ annotator: string; compared: string; agreed: string }>(
      `SELECT t.key AS annotator, sum((t.value->>'compared')::int) AS compared, sum((t.value->>'agreed')::int) AS agreed
       FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 2, jsonb_each(q.details->'tallies') t
       WHERE s.project_id = $1 AND s.batch_id = $2 GROUP BY t.key ORDER BY t.key`,
      [input.project, input.batchId],
    );
    const totals = await deps.pool.query<{ samples: string; conflicts: string }>(
      `SELECT count(*) AS samples, count(*) FILTER (WHERE NOT q.passed) AS conflicts
       FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 2 WHERE s.project_id = $1 AND s.batch_id = $2`,
      [input.project, input.batchId],
    );
    const values = votes.map((v) => v.map((x) => x.value));
    const categories = [...new Set(values.flat())].sort();
    const annotators: BatchAgreement['annotators'] = {};
    for (const r of per.rows) {
      const compared = Number(r.compared);
      const agreed = Number(r.agreed);
      annotators[r.annotator] = { compared, agreed, rate: compared > 0 ? agreed / compared : 1, ...(fit?.weights[r.annotator] !== undefined ? { reliability: fit.weights[r.annotator] } : {}) };
    }
    const kappa = fleissKappa(categoryCounts(values, categories));
    const alpha = krippendorffAlphaNominal(values);
    const result: BatchAgreement = {
      samples: Number(totals.rows[0]!.samples),
      conflicts: Number(totals.rows[0]!.conflicts),
      fleissKappa: kappa ?? null,
      krippendorffAlpha: alpha ?? null,
      pairableItems: values.filter((v) => v.length >= 2).length,
      annotators,
      pluginErrors,
    };
    await withTransaction(deps.pool, async (c) => {
      await c.query('UPDATE batches SET agreement = $3 WHERE project_id = $1 AND id = $2', [input.project, input.batchId, JSON.stringify(result)]);
      for (const [a, t] of Object.entries(annotators)) {
        await c.query(
          `INSERT INTO annotator_agreement (project_id, batch_id, annotator, compared, agreed) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (project_id, batch_id, annotator) DO UPDATE SET compared = EXCLUDED.compared, agreed = EXCLUDED.agreed`,
          [input.project, input.batchId, a, t.compared, t.agreed],
        );
      }
    });
    return result;
  }
}
