import { getObjectBufferIfExists } from '../src/clients/minio';
import { sha256Hex } from '../src/util/canonical-json';
import { ModelIntegrityError, ModelLoadError, type LoadedSession, type SessionCache } from '../src/clients/onnx-sessions';
import type { Layer3Plan, PlausibilitySummary } from '../workflows/definitions';
import { OrtThreadExited, type PlainTensor, type ThreadSession } from '../src/clients/onnx-thread';
import { AdapterError, createAdapter, type AdapterItem, type InputAdapter, type InputTensor } from '../src/qc/inference/adapters';
import { scoreSample, type ModelPrediction } from '../src/qc/inference/scoring';
import type { Finding } from '../src/qc/findings';
import type { MediaRef } from '../src/ingest/envelope';
import { unscoredPage, upsertQcResults, type UnscoredSample } from '../src/store/qc-results';
import { getModelVersion, resolveModelRefs, UnknownModelError, type ModelVersionRow, type PinnedModel } from '../src/store/models';
import { type ActivityDeps, type BatchKey, batchPolicy, heartbeat, policyOf, requireProject } from './deps';
import { loadFlags } from '../src/store/flags';
import { splitProblem } from '../src/rollout/bucketing';
import { PinnedSplits } from '../src/rollout/pinned-split';
import { metrics } from '../src/observability/metrics';

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

/** Why a model cannot be used at all: becomes a finding on every sample of the batch instead of a retry loop. */
class ModelUnavailable extends Error {}

interface Member {
  version: ModelVersionRow;
  adapter: InputAdapter;
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
 * Work started now and awaited later (a prefetch, a write, a running batch) must not become an unhandled
 * rejection if it fails meanwhile: it is marked observed here, and its error is thrown where it is awaited.
 */
function observed<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** On the qc-inference queue: layer 3, the pinned model(s) over every layer-1-passed sample of the batch. */
export function inferenceActivities(deps: InferenceDeps) {
  const adapters = new Map<string, InputAdapter>();
  const splits = new PinnedSplits();

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

  function toFeeds(session: ThreadSession, prepared: Record<string, InputTensor>, modelId: string): Record<string, PlainTensor> {
    const feeds: Record<string, PlainTensor> = {};
    const produced = Object.keys(prepared);
    for (const name of session.inputNames) {
      // A single-input model takes the adapter's single tensor whatever the input is called.
      const t = prepared[name] ?? (session.inputNames.length === 1 && produced.length === 1 ? prepared[produced[0]!] : undefined);
      if (!t) throw new ModelUnavailable(`model ${modelId} expects input ${JSON.stringify(name)}, which its adapter does not produce (it gives ${produced.join(', ')})`);
      feeds[name] = t;
    }
    return feeds;
  }

  type Prediction = { logits?: Float32Array; finding?: Finding };
  type PreparedBatch = { out: Prediction[]; prepared: Awaited<ReturnType<Member['adapter']['prepare']>> };
  /** A member's predictions for a batch, and onnxruntime's compute time per row of it (what a gray release compares as latency). */
  type BatchRun = { predictions: Prediction[]; msPerRow: number };

  /** The adapter's half of a batch (tokenize, decode images): CPU work on this thread. */
  async function prepareBatch(m: Member, items: AdapterItem[]): Promise<PreparedBatch> {
    const out: Prediction[] = items.map(() => ({}));
    const prepared = await m.adapter.prepare(items);
    for (const r of prepared.rejected) out[r.index] = { finding: r.finding };
    return { out, prepared };
  }

  /** onnxruntime's half, on the onnxruntime thread (the batch's tensors move there), so this thread prepares the next. */
  async function runBatch(m: Member, s: LoadedSession, { out, prepared }: PreparedBatch): Promise<BatchRun> {
    if (prepared.rows.length === 0) return { predictions: out, msPerRow: 0 };
    const outputName = m.version.manifest.output ?? s.session.outputNames[0]!;
    let result: Record<string, PlainTensor>;
    let computeMs: number;
    try {
      const end = metrics.inferenceSeconds.startTimer({ model: m.version.id });
      ({ outputs: result, computeMs } = await s.session.run(toFeeds(s.session, prepared.feeds, m.version.id), [outputName]));
      end();
      metrics.inferenceSamples.inc({ model: m.version.id }, prepared.rows.length);
    } catch (err) {
      // A lost thread is the worker's fault, not the model's: the activity's retry reloads the session.
      if (err instanceof ModelUnavailable || err instanceof OrtThreadExited) throw err;
      throw new ModelUnavailable(`onnxruntime could not run model ${m.version.id}: ${(err as Error).message.split('\n')[0]}`);
    }
    const logits = result[outputName]!;
    const C = m.version.manifest.labels.length;
    if (logits.dims.length !== 2 || logits.dims[0] !== prepared.rows.length || logits.dims[1] !== C) {
      throw new ModelUnavailable(`model ${m.version.id} output ${outputName} has shape [${logits.dims.join(', ')}]; expected [${prepared.rows.length}, ${C}] (one logit per manifest label)`);
    }
    const data = logits.data as Float32Array;
    prepared.rows.forEach((index, r) => { out[index] = { logits: data.subarray(r * C, (r + 1) * C) }; });
    return { predictions: out, msPerRow: computeMs / prepared.rows.length };
  }

  /** Holds every member's session for the whole call, so an eviction cannot release one between batches. */
  function withSessions<T>(members: Member[], fn: (sessions: LoadedSession[]) => Promise<T>, held: LoadedSession[] = []): Promise<T> {
    const m = members[held.length];
    if (!m) return fn(held);
    return deps.sessions.with(m.version.sha256, () => fetchModelObject(m.version.objectKey), (s) => withSessions(members, fn, [...held, s]));
  }

  return {
    async scorePlausibility(input: PlausibilityInput): Promise<PlausibilitySummary> {
      const project = await requireProject(deps, input.project);
      const policy = await batchPolicy(deps, input, project);
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

      type Row = UnscoredSample;
      const rollout = input.arm ? input.plan.rollout : undefined;
      /** Results say which arm of which flag scored them: what the rollout's per-arm outcomes count. */
      const armTag = rollout ? { arm: input.arm, flag: rollout.flag } : {};
      /** The rows this call scores: all, unless a gray release (asked through OpenFeature) gives some to another arm. */
      const inArm = async (rows: Row[]): Promise<Row[]> => {
        if (!rollout) return rows;
        const arms = await Promise.all(rows.map((r) => splits.armOf(rollout, { project: input.project, sampleId: r.id, annotators: r.annotators })));
        return rows.filter((_, i) => arms[i] === input.arm);
      };
      // Pages by id (keyset), each read while the one before is still being worked on. The first page is one
      // batch, so the model starts after one small read rather than a full page.
      const readPage = (after: string, limit: number) => observed(unscoredPage(deps.pool, input.project, input.batchId, after, limit));
      /** The batch's unscored samples, `batchSize` rows at a time, across page boundaries. */
      async function* batches(): AsyncGenerator<Row[]> {
        let limit = deps.batchSize;
        let page = readPage('', limit);
        const buffer: Row[] = [];
        for (;;) {
          const rows = await page;
          const last = rows.length < limit;
          if (!last) {
            limit = PAGE;
            page = readPage(rows[rows.length - 1]!.id, limit);
          }
          buffer.push(...(await inArm(rows)));
          while (buffer.length >= deps.batchSize || (last && buffer.length > 0)) yield buffer.splice(0, deps.batchSize);
          if (last) return;
        }
      }
      type Result = { id: string; passed: boolean; score: number | null; findings: Finding[]; details: Record<string, unknown> };
      const unavailableResults = (rows: Row[], message: string): Result[] =>
        rows.map((r) => ({ id: r.id, passed: false, score: null, findings: [{ layer: 3, pointer: '', rule: 'layer3.model_unavailable', message: `${message}; layer 3 could not judge this sample, so it goes to review` }], details: { error: message, ...armTag } }));
      const scoreRows = (rows: Row[], perMember: BatchRun[]): Result[] => {
        // Every member computes every row: a sample's model time is the members' time per row, summed.
        const inferenceMs = +perMember.reduce((ms, m) => ms + m.msPerRow, 0).toFixed(4);
        return rows.map((r, i) => {
          const refused = perMember.map((p) => p.predictions[i]!.finding).find(Boolean);
          if (refused) return { id: r.id, passed: false, score: null, findings: [refused], details: { error: refused.message, ...armTag } };
          const preds: ModelPrediction[] = perMember.map((p, k) => ({ modelVersion: members[k]!.version.id, logits: p.predictions[i]!.logits! }));
          const p = scoreSample(preds, labels, r.consensus ?? [], policy.layer3.topK);
          return { id: r.id, passed: p.passed, score: p.score, findings: p.findings, details: { uncertainty: p.uncertainty, epistemic: p.epistemic, spread: p.spread, top: p.top, consensus: r.consensus ?? [], inferenceMs, ...armTag } };
        });
      };
      // Results queue up and one statement writes everything queued, in the background: while Postgres is
      // busy with one write the next batches' results gather into the next, so neither thread waits on it
      // and a slow database gets fewer, larger statements.
      let queued: Result[] = [];
      let draining: Promise<void> | undefined;
      let writeFailed: unknown;
      const drain = async (): Promise<void> => {
        while (queued.length > 0) {
          const chunk = queued;
          queued = [];
          // A sample scored before (a retried page) keeps its first result.
          await upsertQcResults(deps.pool, 3, chunk.map((r) => ({ ...r, modelVersion })), { keepFirst: true });
        }
      };
      const startDrain = (): Promise<void> => (draining ??= drain().catch((err: unknown) => { writeFailed ??= err; }).finally(() => { draining = undefined; }));
      const writeResults = (results: Result[]): void => {
        if (writeFailed) throw writeFailed;
        queued.push(...results);
        for (const r of results) {
          if (r.score !== null) summary.scored++;
          if (r.findings.some((f) => f.rule === 'layer3.model_disagrees')) summary.disagreements++;
          if (r.score === null && !r.passed) summary.failed++;
        }
        heartbeat({ done: summary.scored + summary.failed });
        void startDrain();
      };
      /** Resolves once everything queued is in Postgres; throws the first write's error. */
      const flushWrites = async (): Promise<void> => {
        while (draining || (queued.length > 0 && !writeFailed)) await startDrain();
        if (writeFailed) throw writeFailed;
      };
      const isModelFault = (err: unknown): err is Error => err instanceof ModelUnavailable || err instanceof ModelIntegrityError || err instanceof ModelLoadError;
      const modelFault = (err: Error): void => {
        summary.modelError = err.message;
        deps.log.error({ project: input.project, batchId: input.batchId, models: modelVersion, err: err.message }, 'layer-3 model unusable; samples go to review');
      };

      type InFlight = { rows: Row[]; runs: Promise<BatchRun[]> };
      /** Waits for a submitted batch, scores it and starts its write; after a model fault, it is marked unjudged. */
      const finish = async (b: InFlight): Promise<void> => {
        let perMember: BatchRun[] | undefined;
        try {
          perMember = await b.runs;
        } catch (err) {
          if (!isModelFault(err)) throw err;
          if (!summary.modelError) modelFault(err);
        }
        writeResults(summary.modelError || !perMember ? unavailableResults(b.rows, summary.modelError!) : scoreRows(b.rows, perMember));
      };
      /**
       * Batch i+1 is prepared (tokenized, decoded) while batch i runs and is queued on the onnxruntime thread
       * behind it, so the model never waits for this thread; batch i is scored and written while i+1 runs.
       */
      const scoreAll = async (sessions: LoadedSession[]): Promise<void> => {
        for (const s of sessions) if (!summary.providers.includes(s.provider)) summary.providers.push(s.provider);
        let inFlight: InFlight | undefined;
        for await (const rows of batches()) {
          const items: AdapterItem[] = await Promise.all(rows.map(async (r) => {
            const key = imageKey(r.media);
            return { payload: r.payload, image: key ? await getObjectBufferIfExists(deps.store, key) : undefined };
          }));
          const prepared = await Promise.all(members.map((m) => prepareBatch(m, items)));
          const next: InFlight = { rows, runs: observed(Promise.all(members.map((m, k) => runBatch(m, sessions[k]!, prepared[k]!)))) };
          if (inFlight) await finish(inFlight);
          inFlight = next;
          // The rest is left to the unjudged pass below, which reads what is still unscored.
          if (summary.modelError) break;
        }
        if (inFlight) await finish(inFlight);
      };

      if (!summary.modelError) {
        try {
          await withSessions(members, scoreAll);
        } catch (err) {
          // Only loading can fail this way: faults of a running batch are caught by `finish`.
          if (!isModelFault(err)) throw err;
          modelFault(err);
        }
      }
      if (summary.modelError) {
        // The unjudged pass reads what is still unscored, so what was scored must be written first.
        await flushWrites();
        for await (const rows of batches()) writeResults(unavailableResults(rows, summary.modelError));
      }
      await flushWrites();
      summary.cache = deps.sessions.stats();
      deps.log.info({ project: input.project, batchId: input.batchId, models: modelVersion, ...summary }, 'layer 3 done');
      return summary;
    },
  };
}

export type InferenceActivities = ReturnType<typeof inferenceActivities>;
