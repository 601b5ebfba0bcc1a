import { getObjectBufferIfExists } from '../src/clients/minio';
import { sha256Hex } from '../src/util/canonical-json';
import { ModelIntegrityError, ModelLoadError, type LoadedSession, type SessionCache } from '../src/clients/onnx-sessions';
import { OrtThreadExited, type PlainTensor, type ThreadSession } from '../src/clients/onnx-thread';
import { AdapterError, createAdapter, type AdapterItem, type InputAdapter, type InputTensor } from '../src/qc/inference/adapters';
import type { MemberRun } from '../src/qc/inference/scoring';
import type { Layer3Plan } from '../workflows/definitions';
import { getModelVersion, type ModelVersionRow, type PinnedModel } from '../src/store/models';
import { metrics } from '../src/observability/metrics';
import type { ActivityDeps } from './deps';

/** Why a model cannot be used at all: becomes a finding on every sample of the batch instead of a retry loop. */
export class ModelUnavailable extends Error {}

/** A fault of the model (or its file), not of the worker: the batch's samples go to review with the reason. */
export const isModelFault = (err: unknown): err is Error => err instanceof ModelUnavailable || err instanceof ModelIntegrityError || err instanceof ModelLoadError;

export interface Member {
  version: ModelVersionRow;
  adapter: InputAdapter;
}

export type PreparedBatch = { out: MemberRun['predictions']; prepared: Awaited<ReturnType<InputAdapter['prepare']>> };

/**
 * The pinned models of a layer-3 call, as this worker runs them: registered versions checked against the
 * sha256 the batch pinned, their adapters (built once per file), and their onnxruntime sessions.
 */
export function layer3Models(deps: Pick<ActivityDeps, 'pool' | 'store'> & { sessions: SessionCache }) {
  const adapters = new Map<string, InputAdapter>();

  async function fetchModelObject(key: string): Promise<Buffer> {
    // A missing object will not appear on retry (an unreachable MinIO may, and is thrown as is).
    const bytes = await getObjectBufferIfExists(deps.store, key);
    if (!bytes) throw new ModelUnavailable(`model object ${key} is missing from storage; re-register the model`);
    return bytes;
  }

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

  function toFeeds(session: ThreadSession, prepared: Record<string, InputTensor>, modelId: string): Record<string, PlainTensor> {
    const feeds: Record<string, PlainTensor> = {};
    const produced = Object.keys(prepared);
    for (const name of session.inputNames) {
      // A single-input model takes the adapter's primary tensor (the first: a text adapter's input_ids) whatever
      // the exporter called the input — torch.onnx.export names it after the user's own argument.
      const t = prepared[name] ?? (session.inputNames.length === 1 ? prepared[produced[0]!] : undefined);
      if (!t) throw new ModelUnavailable(`model ${modelId} expects input ${JSON.stringify(name)}, which its adapter does not produce (it gives ${produced.join(', ')})`);
      feeds[name] = t;
    }
    return feeds;
  }

  /** Holds every member's session for the whole call, so an eviction cannot release one between batches. */
  function withSessions<T>(members: Member[], fn: (sessions: LoadedSession[]) => Promise<T>, held: LoadedSession[] = []): Promise<T> {
    const m = members[held.length];
    if (!m) return fn(held);
    return deps.sessions.with(m.version.sha256, () => fetchModelObject(m.version.objectKey), (s) => withSessions(members, fn, [...held, s]));
  }

  return {
    withSessions,

    /** The plan's members, or ModelUnavailable saying why they cannot score (unresolved, missing, mismatched labels). */
    async members(plan: Layer3Plan): Promise<Member[]> {
      if (plan.unresolved) throw new ModelUnavailable(plan.unresolved);
      const members = await Promise.all(plan.models.map(memberOf));
      if (members.length === 0) throw new ModelUnavailable('no model pinned');
      const labels = members[0]!.version.manifest.labels.join('\n');
      if (members.some((m) => m.version.manifest.labels.join('\n') !== labels)) throw new ModelUnavailable(`ensemble members ${plan.models.map((m) => m.id).join('+')} have different label maps`);
      return members;
    },

    /** The adapter's half of a batch (tokenize, decode images): CPU work on this thread. */
    async prepareBatch(m: Member, items: AdapterItem[]): Promise<PreparedBatch> {
      const out: MemberRun['predictions'] = items.map(() => ({}));
      const prepared = await m.adapter.prepare(items);
      for (const r of prepared.rejected) out[r.index] = { finding: r.finding };
      return { out, prepared };
    },

    /** onnxruntime's half, on the onnxruntime thread (the batch's tensors move there), so this thread prepares the next. */
    async runBatch(m: Member, s: LoadedSession, { out, prepared }: PreparedBatch): Promise<MemberRun> {
      const modelVersion = m.version.id;
      if (prepared.rows.length === 0) return { modelVersion, predictions: out, msPerRow: 0 };
      const outputName = m.version.manifest.output ?? s.session.outputNames[0]!;
      let result: Record<string, PlainTensor>;
      let computeMs: number;
      try {
        const end = metrics.inferenceSeconds.startTimer({ model: modelVersion });
        ({ outputs: result, computeMs } = await s.session.run(toFeeds(s.session, prepared.feeds, modelVersion), [outputName]));
        end();
        metrics.inferenceSamples.inc({ model: modelVersion }, prepared.rows.length);
      } catch (err) {
        // A lost thread is the worker's fault, not the model's: the activity's retry reloads the session.
        if (err instanceof ModelUnavailable || err instanceof OrtThreadExited) throw err;
        throw new ModelUnavailable(`onnxruntime could not run model ${modelVersion}: ${(err as Error).message.split('\n')[0]}`);
      }
      const logits = result[outputName]!;
      const C = m.version.manifest.labels.length;
      if (logits.dims.length !== 2 || logits.dims[0] !== prepared.rows.length || logits.dims[1] !== C) {
        throw new ModelUnavailable(`model ${modelVersion} output ${outputName} has shape [${logits.dims.join(', ')}]; expected [${prepared.rows.length}, ${C}] (one logit per manifest label)`);
      }
      const data = logits.data as Float32Array;
      prepared.rows.forEach((index, r) => { out[index] = { logits: data.subarray(r * C, (r + 1) * C) }; });
      return { modelVersion, predictions: out, msPerRow: computeMs / prepared.rows.length };
    },
  };
}
