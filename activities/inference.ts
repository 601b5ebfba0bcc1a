import * as ort from 'onnxruntime-node';
import { getObjectBufferIfExists } from '../src/clients/minio';
import { ModelIntegrityError, ModelLoadError, sha256Hex, type CacheStats, type LoadedSession, type SessionCache } from '../src/clients/onnx-sessions';
import { AdapterError, createAdapter, type AdapterItem, type InputAdapter, type InputTensor } from '../src/qc/inference/adapters';
import { scoreSample, type ModelPrediction } from '../src/qc/inference/scoring';
import type { Finding } from '../src/qc/findings';
import type { MediaRef } from '../src/ingest/envelope';
import { getModelVersion, resolveModelRefs, UnknownModelError, type ModelVersionRow, type PinnedModel } from '../src/store/models';
import { policyOf } from './consistency';
import { type ActivityDeps, type BatchKey, heartbeat, requireProject } from './deps';

/** What a batch pins for layer 3 at its start: exact model versions and the queue of the inference workers. */
export interface Layer3Plan {
  models: PinnedModel[];
  taskQueue: string;
  /** Set when a configured model reference did not resolve: the batch's samples get a finding saying so. */
  unresolved?: string;
}

export interface PlausibilityInput extends BatchKey {
  plan: Layer3Plan;
}

export interface PlausibilitySummary {
  scored: number;
  disagreements: number;
  /** Samples the model could not judge (bad input, NaN output, model unavailable). */
  failed: number;
  modelError: string | null;
  providers: string[];
  cache: CacheStats;
}

export interface InferenceDeps extends ActivityDeps {
  sessions: SessionCache;
  batchSize: number;
}

/** Why a model cannot be used at all: becomes a finding on every sample of the batch instead of a retry loop. */
class ModelUnavailable extends Error {}

interface Member {
  version: ModelVersionRow;
  adapter: InputAdapter;
}

const PAGE = 512;

/** On the qc-cpu queue: pins the project's layer-3 models (null when it has none) for a batch about to start. */
export function layer3PlanActivities(deps: ActivityDeps) {
  return {
    async pinLayer3Models(input: { project: string }): Promise<Layer3Plan | null> {
      const policy = policyOf(await requireProject(deps, input.project));
      if (policy.layer3.models.length === 0) return null;
      try {
        return { models: await resolveModelRefs(deps.pool, policy.layer3.models), taskQueue: deps.inferenceQueue };
      } catch (err) {
        // Failing the batch would strand its samples; they go to review with the reason instead.
        if (err instanceof UnknownModelError) return { models: [], taskQueue: deps.inferenceQueue, unresolved: err.message };
        throw err;
      }
    },
  };
}

/** On the qc-inference queue: layer 3, the pinned model(s) over every layer-1-passed sample of the batch. */
/**
 * Work started now and awaited later (a prefetch, a write, a running batch) must not become an unhandled
 * rejection if it fails meanwhile: it is marked observed here, and its error is thrown where it is awaited.
 */
function observed<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

export function inferenceActivities(deps: InferenceDeps) {
  const adapters = new Map<string, InputAdapter>();

  async function memberOf(pinned: PinnedModel): Promise<Member> {
    const version = await getModelVersion(deps.pool, pinned.id);
    if (!version) throw new ModelUnavailable(`model version ${pinned.id} is not registered`);
    if (version.sha256 !== pinned.sha256) throw new ModelUnavailable(`model version ${pinned.id} has sha256 ${version.sha256}, the batch pinned ${pinned.sha256}`);
    let adapter = adapters.get(version.sha256);
    if (!adapter) {
      let tokenizer: Record<string, unknown> | undefined;
      if (version.tokenizerKey) {
        const bytes = await fetchModelObject(version.tokenizerKey);
        if (sha256Hex(bytes) !== version.tokenizerSha256) throw new ModelUnavailable(`tokenizer ${version.tokenizerKey} does not match its registered sha256; re-register the model`);
        tokenizer = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
      }
      try {
        adapter = createAdapter(version.manifest.adapter, tokenizer);
      } catch (err) {
        if (err instanceof AdapterError) throw new ModelUnavailable(`model ${pinned.id}: ${err.message}`);
        throw err;
      }
      adapters.set(version.sha256, adapter);
    }
    return { version, adapter };
  }

  async function fetchModelObject(key: string): Promise<Buffer> {
    // A missing object will not appear on retry (an unreachable MinIO may, and is thrown as is).
    const bytes = await getObjectBufferIfExists(deps.store, key);
    if (!bytes) throw new ModelUnavailable(`model object ${key} is missing from storage; re-register the model`);
    return bytes;
  }

  function toFeeds(session: ort.InferenceSession, prepared: Record<string, InputTensor>, modelId: string): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    const produced = Object.keys(prepared);
    for (const name of session.inputNames) {
      // A single-input model takes the adapter's single tensor whatever the input is called.
      const t = prepared[name] ?? (session.inputNames.length === 1 && produced.length === 1 ? prepared[produced[0]!] : undefined);
      if (!t) throw new ModelUnavailable(`model ${modelId} expects input ${JSON.stringify(name)}, which its adapter does not produce (it gives ${produced.join(', ')})`);
      feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    }
    return feeds;
  }

  type Prediction = { logits?: Float32Array; finding?: Finding };
  type PreparedBatch = { out: Prediction[]; prepared: Awaited<ReturnType<Member['adapter']['prepare']>> };

  /** The adapter's half of a batch (tokenize, decode images): CPU work on this thread. */
  async function prepareBatch(m: Member, items: AdapterItem[]): Promise<PreparedBatch> {
    const out: Prediction[] = items.map(() => ({}));
    const prepared = await m.adapter.prepare(items);
    for (const r of prepared.rejected) out[r.index] = { finding: r.finding };
    return { out, prepared };
  }

  /** onnxruntime's half: runs on its own threads, so the next batch can be prepared meanwhile. */
  async function runBatch(m: Member, s: LoadedSession, { out, prepared }: PreparedBatch): Promise<Prediction[]> {
    if (prepared.rows.length === 0) return out;
    const outputName = m.version.manifest.output ?? s.session.outputNames[0]!;
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      result = await s.session.run(toFeeds(s.session, prepared.feeds, m.version.id), [outputName]);
    } catch (err) {
      if (err instanceof ModelUnavailable) throw err;
      throw new ModelUnavailable(`onnxruntime could not run model ${m.version.id}: ${(err as Error).message.split('\n')[0]}`);
    }
    const logits = result[outputName]!;
    const C = m.version.manifest.labels.length;
    if (logits.dims.length !== 2 || logits.dims[0] !== prepared.rows.length || logits.dims[1] !== C) {
      throw new ModelUnavailable(`model ${m.version.id} output ${outputName} has shape [${logits.dims.join(', ')}]; expected [${prepared.rows.length}, ${C}] (one logit per manifest label)`);
    }
    const data = logits.data as Float32Array;
    prepared.rows.forEach((index, r) => { out[index] = { logits: data.subarray(r * C, (r + 1) * C) }; });
    for (const t of Object.values(result)) t.dispose();
    return out;
  }

  /**
   * Logits per item (undefined where the adapter refused it, with the finding), preparing batch i+1 while
   * batch i runs; `whileFirstRuns` (the previous page's bookkeeping) runs while the first batch does.
   */
  async function predictAll(m: Member, s: LoadedSession, items: AdapterItem[], onBatch: (done: number) => void, whileFirstRuns?: () => Promise<void>): Promise<Prediction[]> {
    const out: Prediction[] = [];
    let running: Promise<Prediction[]> | undefined;
    for (let i = 0; i < items.length; i += deps.batchSize) {
      const next = await prepareBatch(m, items.slice(i, i + deps.batchSize));
      if (running) out.push(...await running);
      running = observed(runBatch(m, s, next));
      if (i === 0 && whileFirstRuns) await whileFirstRuns();
      onBatch(i);
    }
    if (running) out.push(...await running);
    return out;
  }

  return {
    async scorePlausibility(input: PlausibilityInput): Promise<PlausibilitySummary> {
      const project = await requireProject(deps, input.project);
      const policy = policyOf(project);
      const summary: PlausibilitySummary = { scored: 0, disagreements: 0, failed: 0, modelError: null, providers: [], cache: deps.sessions.stats() };
      const modelVersion = input.plan.models.map((m) => m.id).join('+') || null;
      let members: Member[] = [];
      try {
        if (input.plan.unresolved) throw new ModelUnavailable(input.plan.unresolved);
        members = await Promise.all(input.plan.models.map(memberOf));
        if (members.length === 0) throw new ModelUnavailable('no model pinned');
        const labels = members[0]!.version.manifest.labels.join('\n');
        if (members.some((m) => m.version.manifest.labels.join('\n') !== labels)) throw new ModelUnavailable(`ensemble members ${modelVersion} have different label maps`);
      } catch (err) {
        if (!(err instanceof ModelUnavailable)) throw err;
        summary.modelError = err.message;
      }
      const labels = members[0]?.version.manifest.labels ?? [];
      const image = members.map((m) => m.version.manifest.adapter).find((a) => a.kind === 'image');
      // Staging moved inline media into MinIO, so every stored media item is a key; a missing one is absent here.
      const imageKey = (media: MediaRef[]): string | undefined => {
        const m = image?.kind === 'image' ? media[image.mediaIndex] : undefined;
        return m && 'key' in m ? m.key : undefined;
      };

      // Pages by id (keyset), so the next page is read while this one is scored and the previous one written.
      const readPage = (after: string) => observed(deps.pool.query<{ id: string; payload: unknown; media: MediaRef[]; consensus: string[] | null }>(
        `SELECT s.id, s.payload, s.media, q2.details->'consensus'->'classes'->'classes' AS consensus
         FROM samples s JOIN qc_results q1 ON q1.sample_id = s.id AND q1.layer = 1 AND q1.passed
         LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2
         WHERE s.project_id = $1 AND s.batch_id = $2 AND s.status = 'qc' AND s.id > $4
           AND NOT EXISTS (SELECT 1 FROM qc_results q3 WHERE q3.sample_id = s.id AND q3.layer = 3)
         ORDER BY s.id LIMIT $3`,
        [input.project, input.batchId, PAGE, after],
      ));
      type Row = { id: string; payload: unknown; media: MediaRef[]; consensus: string[] | null };
      type Result = { id: string; passed: boolean; score: number | null; findings: Finding[]; details: Record<string, unknown> };
      const unavailableResults = (rows: Row[], message: string): Result[] =>
        rows.map((r) => ({ id: r.id, passed: false, score: null, findings: [{ layer: 3, pointer: '', rule: 'layer3.model_unavailable', message: `${message}; layer 3 could not judge this sample, so it goes to review` }], details: { error: message } }));
      const scoreRows = (rows: Row[], perMember: Prediction[][]): Result[] => rows.map((r, i) => {
        const refused = perMember.map((p) => p[i]!.finding).find(Boolean);
        if (refused) return { id: r.id, passed: false, score: null, findings: [refused], details: { error: refused.message } };
        const preds: ModelPrediction[] = perMember.map((p, k) => ({ modelVersion: members[k]!.version.id, logits: p[i]!.logits! }));
        const p = scoreSample(preds, labels, r.consensus ?? [], policy.layer3.topK);
        return { id: r.id, passed: p.passed, score: p.score, findings: p.findings, details: { uncertainty: p.uncertainty, epistemic: p.epistemic, spread: p.spread, top: p.top, consensus: r.consensus ?? [] } };
      });
      let writing: Promise<unknown> = Promise.resolve();
      // One statement per page (per-row round trips would cost more than the model itself), running while
      // the next page is scored; the previous write is awaited first, so writes stay in order.
      const writeResults = async (results: Result[]): Promise<void> => {
        await writing;
        writing = observed(deps.pool.query(
          `INSERT INTO qc_results (sample_id, layer, passed, score, findings, details, model_version)
           SELECT id, 3, passed, score, findings, details, $6 FROM unnest($1::text[], $2::bool[], $3::real[], $4::jsonb[], $5::jsonb[]) AS t(id, passed, score, findings, details)
           ON CONFLICT (sample_id, layer) DO NOTHING`,
          [results.map((r) => r.id), results.map((r) => r.passed), results.map((r) => r.score), results.map((r) => JSON.stringify(r.findings)), results.map((r) => JSON.stringify(r.details)), modelVersion],
        ));
        for (const r of results) {
          if (r.score !== null) summary.scored++;
          if (r.findings.some((f) => f.rule === 'layer3.model_disagrees')) summary.disagreements++;
          if (r.score === null && !r.passed) summary.failed++;
        }
        heartbeat({ done: summary.scored + summary.failed });
      };
      // A page's scoring and write wait until the next page's first batch is running, so the model is
      // never idle while this thread does bookkeeping.
      let pending: (() => Promise<void>) | undefined;
      const flush = async (): Promise<void> => {
        const p = pending;
        pending = undefined;
        if (p) await p();
      };
      let page = readPage('');
      for (;;) {
        const { rows } = await page;
        if (rows.length === 0) break;
        page = readPage(rows[rows.length - 1]!.id);
        if (summary.modelError) {
          await flush();
          await writeResults(unavailableResults(rows, summary.modelError));
          continue;
        }
        try {
          const items: AdapterItem[] = await Promise.all(rows.map(async (r) => {
            const key = imageKey(r.media);
            return { payload: r.payload, image: key ? await getObjectBufferIfExists(deps.store, key) : undefined };
          }));
          const perMember: Prediction[][] = [];
          for (const [k, m] of members.entries()) {
            await deps.sessions.with(m.version.sha256, () => fetchModelObject(m.version.objectKey), async (s) => {
              if (!summary.providers.includes(s.provider)) summary.providers.push(s.provider);
              perMember.push(await predictAll(m, s, items, (i) => heartbeat({ done: summary.scored + summary.failed + i }), k === 0 ? flush : undefined));
            });
          }
          pending = () => writeResults(scoreRows(rows, perMember));
        } catch (err) {
          if (!(err instanceof ModelUnavailable || err instanceof ModelIntegrityError || err instanceof ModelLoadError)) throw err;
          summary.modelError = err.message;
          deps.log.error({ project: input.project, batchId: input.batchId, models: modelVersion, err: err.message }, 'layer-3 model unusable; samples go to review');
          await flush();
          await writeResults(unavailableResults(rows, err.message));
        }
      }
      await flush();
      await writing;
      summary.cache = deps.sessions.stats();
      deps.log.info({ project: input.project, batchId: input.batchId, models: modelVersion, ...summary }, 'layer 3 done');
      return summary;
    },
  };
}

export type InferenceActivities = ReturnType<typeof inferenceActivities>;
