import { withTransaction } from '../src/clients/pg';
import { passedSampleAnnotations } from '../src/store/samples';
import { layer2Page, layer2Summary, writeLayer2Results } from '../src/store/qc-results';
import { getObjectBufferIfExists } from '../src/clients/minio';
import { agreementOf, checkConsistency, mergeTallies, objectAccuracies } from '../src/qc/consistency';
import { configurePlugins, runPlugins, type PluginSample } from '../src/qc/plugins/registry';
import type { QcPolicy } from '../src/qc/policy';
import { categoryCounts, fleissKappa, krippendorffAlphaNominal } from '../src/qc/stats/agreement';
import { oneCoinAccuracies } from '../src/qc/stats/one-coin';
import { attributeItems } from '../src/qc/consistency/attributes';
import { singleClassVotes } from '../src/qc/consistency/classes';
import { classModelOf, fitBatchReliability, type BatchFit } from '../src/store/reliability';
import { combineRisks } from '../src/qc/risk';
import { batchPluginErrors, recordBatchFinding, writeBatchAgreement } from '../src/store/batches';
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

export function consistencyActivities(deps: ActivityDeps) {
  async function loadMedia(media: MediaRef[]): Promise<PluginSample['media']> {
    // Missing media is a layer-1 finding already, so it is simply absent here.
    return Promise.all(media.flatMap((m) => ('key' in m ? [m.key] : [])).map(async (key) => ({ key, bytes: await getObjectBufferIfExists(deps.store, key) })));
  }

  /**
   * What the batch says about its annotators: class votes (for Dawid–Skene), attribute accuracies (one-coin
   * EM over its attribute votes) and object accuracies (agreement of their boxes and spans).
   */
  async function batchEvidence(input: BatchKey, ontology: ProjectDefinition['ontology'], layer2: QcPolicy['layer2']): Promise<{ votes: Array<Array<{ annotator: string; value: string }>>; attributeWeights: Record<string, number>; objectWeights: Record<string, number>; objectClassWeights: Record<string, number>; objectBoundsWeights: Record<string, number> }> {
    const rows = await passedSampleAnnotations(deps.pool, input.project, input.batchId);
    const objects = objectAccuracies(rows, ontology, layer2);
    return {
      votes: rows.map((r) => singleClassVotes(r.annotations)),
      attributeWeights: oneCoinAccuracies(rows.flatMap((r) => attributeItems(r.annotations, ontology.attributes ?? {}))),
      objectWeights: objects.objects, objectClassWeights: objects.classes, objectBoundsWeights: objects.bounds,
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
      const classModel = fit && classModelOf(fit);
      const pluginErrors: BatchAgreement['pluginErrors'] = [];
      let done = 0;
      for (;;) {
        const rows = await layer2Page(deps.pool, input.project, input.batchId, PAGE);
        if (rows.length === 0) break;
        const needsMedia = plugins.some((p) => p.plugin.needsMedia);
        const samples: PluginSample[] = await Promise.all(rows.map(async (r) => ({
          sampleId: r.id, payload: r.payload, annotations: r.annotations, media: needsMedia ? await loadMedia(r.media) : [],
        })));
        const plugged = await runPlugins(plugins, samples, { project: input.project, ontology: project.ontology, weights });
        pluginErrors.push(...plugged.errors);
        const results = samples.map((s) => {
          const votes = singleClassVotes(s.annotations);
          const posterior = classModel && votes.length > 0 ? classModel(votes) : undefined;
          const r = checkConsistency({ annotations: s.annotations, payload: s.payload, ontology: project.ontology, policy: policy.layer2, weights, attributeWeights: evidence.attributeWeights, objectWeights: evidence.objectWeights, objectClassWeights: evidence.objectClassWeights, objectBoundsWeights: evidence.objectBoundsWeights, classPosterior: posterior, ...(classModel ? { classModel } : {}) });
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
    const pluginErrors = await batchPluginErrors(deps.pool, input.project, input.batchId);
    const summary = await layer2Summary(deps.pool, input.project, input.batchId);
    const values = votes.map((v) => v.map((x) => x.value));
    const categories = [...new Set(values.flat())].sort();
    const annotators: BatchAgreement['annotators'] = {};
    for (const { annotator, compared, agreed } of summary.annotators) {
      annotators[annotator] = { compared, agreed, rate: compared > 0 ? agreed / compared : 1, ...(fit?.weights[annotator] !== undefined ? { reliability: fit.weights[annotator] } : {}) };
    }
    const kappa = fleissKappa(categoryCounts(values, categories));
    const alpha = krippendorffAlphaNominal(values);
    const result: BatchAgreement = {
      samples: summary.samples,
      conflicts: summary.conflicts,
      fleissKappa: kappa ?? null,
      krippendorffAlpha: alpha ?? null,
      pairableItems: values.filter((v) => v.length >= 2).length,
      annotators,
      pluginErrors,
    };
    await withTransaction(deps.pool, (c) => writeBatchAgreement(c, input.project, input.batchId, result, annotators));
    return result;
  }
}
