import { getObjectBufferIfExists } from '../src/clients/minio';
import type { LoadedSession, SessionCache } from '../src/clients/onnx-sessions';
import type { Layer3Plan, PlausibilitySummary } from '../workflows/definitions';
import type { AdapterItem } from '../src/qc/inference/adapters';
import { judgedResults, unjudgedResults, type Layer3Result, type MemberRun } from '../src/qc/inference/scoring';
import type { MediaRef } from '../src/ingest/envelope';
import { unscoredPage, upsertQcResults, type UnscoredSample } from '../src/store/qc-results';
import { resolveModelRefs, UnknownModelError, type PinnedModel } from '../src/store/models';
import { type ActivityDeps, type BatchKey, batchPolicy, heartbeat, policyOf, requireProject } from './deps';
import { loadFlags } from '../src/store/flags';
import { splitProblem } from '../src/rollout/bucketing';
import { PinnedSplits } from '../src/rollout/pinned-split';
import { BackgroundWriter } from '../src/util/background-writer';
import { isModelFault, layer3Models, ModelUnavailable, type Member } from './layer3-models';

/** What a batch pins for layer 3 at its start: exact model versions and the queue of the inference workers. */
export interface PlausibilityInput extends BatchKey {
  plan: Layer3Plan;
  /** Under a gray release (plan.rollout): the arm this call scores; samples of other arms are left to their calls. */
  arm?: string;
}

export interface InferenceDeps extends ActivityDeps {
  sessions: SessionCache;
  batchSize: number;
}

const PAGE = 512;

/** The rollout flag as it is now, with its candidates' versions, for a batch about to start; or why it does not apply. */
async function pinRollout(deps: ActivityDeps, flag: string): Promise<Pick<Layer3Plan, 'rollout' | 'rolloutSkipped'>> {
  const f = (await loadFlags(deps.pool, [flag]))[0];
  const skip = (why: string) => {
    deps.log.warn({ flag, why }, 'rollout flag not applied; the control scores every sample');
    return { rolloutSkipped: why };
  };
  if (!f) return skip(`flag ${flag} does not exist`);
  if (!f.enabled) return skip(`flag ${flag} is switched off`);
  const problem = splitProblem(f.arms);
  if (problem) return skip(`flag ${flag}: ${problem}`);
  if (!f.arms.some((a) => a.variant === 'control')) return skip(`flag ${flag} has no control arm`);
  const candidates: Record<string, PinnedModel[]> = {};
  for (const a of f.arms.filter((x) => x.variant !== 'control' && x.share > 0)) {
    try {
      candidates[a.variant] = await resolveModelRefs(deps.pool, [a.variant]);
    } catch (err) {
      if (err instanceof UnknownModelError) return skip(`flag ${flag}: ${err.message}`);
      throw err;
    }
  }
  return { rollout: { flag, salt: f.salt, arms: f.arms, candidates } };
}

/** On the qc-cpu queue: pins the project's layer-3 models (null when it has none) for a batch about to start. */
export function layer3PlanActivities(deps: ActivityDeps) {
  return {
    async pinLayer3Models(input: { project: string }): Promise<Layer3Plan | null> {
      const policy = policyOf(await requireProject(deps, input.project));
      if (policy.layer3.models.length === 0) return null;
      try {
        const models = await resolveModelRefs(deps.pool, policy.layer3.models);
        return { models, taskQueue: deps.inferenceQueue, ...(policy.layer3.rollout ? await pinRollout(deps, policy.layer3.rollout.flag) : {}) };
      } catch (err) {
        // Failing the batch would strand its samples; they go to review with the reason instead.
        if (err instanceof UnknownModelError) return { models: [], taskQueue: deps.inferenceQueue, unresolved: err.message };
        throw err;
      }
    },
  };
}

/**
 * Work started now and awaited later (a prefetch, a running batch) must not become an unhandled rejection
 * if it fails meanwhile: it is marked observed here, and its error is thrown where it is awaited.
 */
function observed<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * On the qc-inference queue: layer 3, the pinned model(s) over every layer-1-passed sample of the batch (of
 * its arm, under a gray release). Batch i+1 is prepared (tokenized, decoded) while batch i runs on the
 * onnxruntime thread, and i is scored and written in the background while i+1 runs. A model fault sends
 * the rest of the batch to review with the reason; a worker fault is thrown, for the retry.
 */
export function inferenceActivities(deps: InferenceDeps) {
  const models = layer3Models(deps);
  const splits = new PinnedSplits();

  return {
    async scorePlausibility(input: PlausibilityInput): Promise<PlausibilitySummary> {
      const policy = await batchPolicy(deps, input, await requireProject(deps, input.project));
      const summary: PlausibilitySummary = { scored: 0, disagreements: 0, failed: 0, modelError: null, providers: [], cache: deps.sessions.stats() };
      const modelVersion = input.plan.models.map((m) => m.id).join('+') || null;
      const modelFault = (err: Error): void => {
        summary.modelError = err.message;
        deps.log.error({ project: input.project, batchId: input.batchId, models: modelVersion, err: err.message }, 'layer-3 model unusable; samples go to review');
      };
      let members: Member[] = [];
      try {
        members = await models.members(input.plan);
      } catch (err) {
        if (!(err instanceof ModelUnavailable)) throw err;
        summary.modelError = err.message;
      }
      const labels = members[0]?.version.manifest.labels ?? [];
      const rollout = input.arm ? input.plan.rollout : undefined;
      /** Results say which arm of which flag scored them: what the rollout's per-arm outcomes count. */
      const tag = rollout ? { arm: input.arm, flag: rollout.flag } : {};
      const batches = () => unscoredBatches(deps, input, rollout !== undefined, async (rows) => {
        if (!rollout) return rows;
        const arms = await Promise.all(rows.map((r) => splits.armOf(rollout, { project: input.project, sampleId: r.id, annotators: r.annotators })));
        return rows.filter((_, i) => arms[i] === input.arm);
      });
      // A sample scored before (a retried page) keeps its first result.
      const writer = new BackgroundWriter<Layer3Result>((chunk) => upsertQcResults(deps.pool, 3, chunk.map((r) => ({ ...r, modelVersion })), { keepFirst: true }));
      const write = (results: Layer3Result[]): void => {
        writer.push(results);
        for (const r of results) {
          if (r.score !== null) summary.scored++;
          if (r.findings.some((f) => f.rule === 'layer3.model_disagrees')) summary.disagreements++;
          if (r.score === null && !r.passed) summary.failed++;
        }
        heartbeat({ done: summary.scored + summary.failed });
      };

      type InFlight = { rows: UnscoredSample[]; runs: Promise<MemberRun[]> };
      /** Waits for a submitted batch and writes its results; after a model fault, it is marked unjudged. */
      const finish = async (b: InFlight): Promise<void> => {
        const runs = await b.runs.catch((err: unknown) => {
          if (!isModelFault(err)) throw err;
          if (!summary.modelError) modelFault(err);
          return undefined;
        });
        write(summary.modelError || !runs ? unjudgedResults(b.rows.map((r) => r.id), summary.modelError!, tag) : judgedResults(b.rows, runs, labels, policy.layer3.topK, tag));
      };
      const imageOf = mediaKeyOf(members);
      const scoreAll = async (sessions: LoadedSession[]): Promise<void> => {
        for (const s of sessions) if (!summary.providers.includes(s.provider)) summary.providers.push(s.provider);
        let inFlight: InFlight | undefined;
        for await (const rows of batches()) {
          const items: AdapterItem[] = await Promise.all(rows.map(async (r) => {
            const key = imageOf(r.media);
            return { payload: r.payload, image: key ? await getObjectBufferIfExists(deps.store, key) : undefined };
          }));
          const prepared = await Promise.all(members.map((m) => models.prepareBatch(m, items)));
          const next: InFlight = { rows, runs: observed(Promise.all(members.map((m, k) => models.runBatch(m, sessions[k]!, prepared[k]!)))) };
          if (inFlight) await finish(inFlight);
          inFlight = next;
          // The rest is left to the unjudged pass below, which reads what is still unscored.
          if (summary.modelError) break;
        }
        if (inFlight) await finish(inFlight);
      };

      if (!summary.modelError) {
        // Only loading can fail here: faults of a running batch are caught by `finish`.
        await models.withSessions(members, scoreAll).catch((err: unknown) => {
          if (!isModelFault(err)) throw err;
          modelFault(err);
        });
      }
      if (summary.modelError) {
        // The unjudged pass reads what is still unscored, so what was scored must be written first.
        await writer.flush();
        for await (const rows of batches()) write(unjudgedResults(rows.map((r) => r.id), summary.modelError, tag));
      }
      await writer.flush();
      summary.cache = deps.sessions.stats();
      deps.log.info({ project: input.project, batchId: input.batchId, models: modelVersion, ...summary }, 'layer 3 done');
      return summary;
    },
  };
}

/** Where an image model finds a sample's image: staging moved inline media into MinIO, so a stored item is a key. */
function mediaKeyOf(members: Member[]): (media: MediaRef[]) => string | undefined {
  const image = members.map((m) => m.version.manifest.adapter).find((a) => a.kind === 'image');
  return (media) => {
    const m = image?.kind === 'image' ? media[image.mediaIndex] : undefined;
    return m && 'key' in m ? m.key : undefined;
  };
}

/**
 * The batch's unscored samples that `keep` keeps, `batchSize` at a time across page boundaries. Pages go by
 * id (keyset), each read while the one before is worked on; the first is one batch, so the model starts
 * after one small read rather than a full page.
 */
async function* unscoredBatches(deps: InferenceDeps, key: BatchKey, withAnnotators: boolean, keep: (rows: UnscoredSample[]) => Promise<UnscoredSample[]>): AsyncGenerator<UnscoredSample[]> {
  const readPage = (after: string, limit: number) => observed(unscoredPage(deps.pool, key.project, key.batchId, after, limit, withAnnotators));
  let limit = deps.batchSize;
  let page = readPage('', limit);
  const buffer: UnscoredSample[] = [];
  for (;;) {
    const rows = await page;
    const last = rows.length < limit;
    if (!last) {
      limit = PAGE;
      page = readPage(rows[rows.length - 1]!.id, limit);
    }
    buffer.push(...(await keep(rows)));
    while (buffer.length >= deps.batchSize || (last && buffer.length > 0)) yield buffer.splice(0, deps.batchSize);
    if (last) return;
  }
}

export type InferenceActivities = ReturnType<typeof inferenceActivities>;
