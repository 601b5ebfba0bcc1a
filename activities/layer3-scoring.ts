import { getObjectBufferIfExists } from '../src/clients/minio';
import type { LoadedSession, SessionCache } from '../src/clients/onnx-sessions';
import type { Layer3Plan, PlausibilitySummary } from '../workflows/definitions';
import type { AdapterItem } from '../src/qc/inference/adapters';
import { judgedResults, unjudgedResults, type Layer3Result, type MemberRun } from '../src/qc/inference/scoring';
import type { MediaRef } from '../src/ingest/envelope';
import { unscoredPage, upsertQcResults, type UnscoredSample } from '../src/store/qc-results';
import { type ActivityDeps, type BatchKey, heartbeat } from './deps';
import type { PinnedSplits } from '../src/rollout/pinned-split';
import { BackgroundWriter } from '../src/util/background-writer';
import { isModelFault, ModelUnavailable, type layer3Models, type Member } from './layer3-models';

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

type InFlight = { rows: UnscoredSample[]; runs: Promise<MemberRun[]> };

/**
 * Work started now and awaited later (a prefetch, a running batch) must not become an unhandled rejection
 * if it fails meanwhile: it is marked observed here, and its error is thrown where it is awaited.
 */
function observed<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * One layer-3 call over a batch (of one arm, under a gray release): its members, its counts, and the
 * background writer of its results. Once a model fault is recorded, nothing more is judged: the rest of
 * the batch is written unjudged with the reason, and goes to review.
 */
export class Layer3Scoring {
  readonly summary: PlausibilitySummary;
  members: Member[] = [];
  private readonly modelVersion: string | null;
  private readonly rollout: Layer3Plan['rollout'];
  /** Results say which arm of which flag scored them: what the rollout's per-arm outcomes count. */
  private readonly tag: { arm?: string; flag?: string };
  private readonly writer: BackgroundWriter<Layer3Result>;

  constructor(
    private readonly deps: InferenceDeps,
    private readonly models: ReturnType<typeof layer3Models>,
    private readonly splits: PinnedSplits,
    private readonly input: PlausibilityInput,
    private readonly topK: number,
  ) {
    this.summary = { scored: 0, disagreements: 0, failed: 0, modelError: null, providers: [], cache: deps.sessions.stats() };
    const modelVersion = input.plan.models.map((m) => m.id).join('+') || null;
    this.modelVersion = modelVersion;
    // A sample scored before (a retried page) keeps its first result.
    this.writer = new BackgroundWriter<Layer3Result>((chunk) => upsertQcResults(deps.pool, 3, chunk.map((r) => ({ ...r, modelVersion })), { keepFirst: true }));
    this.rollout = input.arm ? input.plan.rollout : undefined;
    this.tag = this.rollout ? { arm: input.arm, flag: this.rollout.flag } : {};
  }

  get faulted(): boolean {
    return this.summary.modelError !== null;
  }

  /** The pinned models as this worker runs them; a model that cannot be used is recorded as the fault. */
  async loadMembers(): Promise<void> {
    try {
      this.members = await this.models.members(this.input.plan);
    } catch (err) {
      if (!(err instanceof ModelUnavailable)) throw err;
      this.summary.modelError = err.message;
    }
  }

  /** Records a model fault (the first one is the reason); anything else is the worker's, thrown for the retry. */
  faultOrThrow(err: unknown): void {
    if (!isModelFault(err)) throw err;
    if (this.faulted) return;
    this.summary.modelError = err.message;
    this.deps.log.error({ project: this.input.project, batchId: this.input.batchId, models: this.modelVersion, err: err.message }, 'layer-3 model unusable; samples go to review');
  }

  /**
   * Scores every unscored sample: batch i+1 is prepared (tokenized, decoded) while batch i runs on the
   * onnxruntime thread, and i is scored and written in the background while i+1 runs.
   */
  async scoreAll(sessions: LoadedSession[]): Promise<void> {
    for (const s of sessions) if (!this.summary.providers.includes(s.provider)) this.summary.providers.push(s.provider);
    const imageOf = mediaKeyOf(this.members);
    let inFlight: InFlight | undefined;
    for await (const rows of this.batches()) {
      const items: AdapterItem[] = await Promise.all(rows.map(async (r) => {
        const key = imageOf(r.media);
        return { payload: r.payload, image: key ? await getObjectBufferIfExists(this.deps.store, key) : undefined };
      }));
      const prepared = await Promise.all(this.members.map((m) => this.models.prepareBatch(m, items)));
      const next: InFlight = { rows, runs: observed(Promise.all(this.members.map((m, k) => this.models.runBatch(m, sessions[k]!, prepared[k]!)))) };
      if (inFlight) await this.finish(inFlight);
      inFlight = next;
      // The rest is left to writeUnjudged, which reads what is still unscored.
      if (this.faulted) break;
    }
    if (inFlight) await this.finish(inFlight);
  }

  /** After a model fault: what is still unscored is written unjudged, with the reason. */
  async writeUnjudged(): Promise<void> {
    // What is still unscored is read from the store, so what was scored must be written first.
    await this.writer.flush();
    for await (const rows of this.batches()) this.write(unjudgedResults(rows.map((r) => r.id), this.summary.modelError!, this.tag));
  }

  /** Waits for every write; the summary with the session cache's counts as they are now. */
  async done(): Promise<PlausibilitySummary> {
    await this.writer.flush();
    this.summary.cache = this.deps.sessions.stats();
    this.deps.log.info({ project: this.input.project, batchId: this.input.batchId, models: this.modelVersion, ...this.summary }, 'layer 3 done');
    return this.summary;
  }

  /** Waits for a submitted batch and writes its results; after a model fault, it is marked unjudged. */
  private async finish(b: InFlight): Promise<void> {
    const runs = await b.runs.catch((err: unknown) => {
      this.faultOrThrow(err);
      return undefined;
    });
    const labels = this.members[0]?.version.manifest.labels ?? [];
    this.write(this.faulted || !runs ? unjudgedResults(b.rows.map((r) => r.id), this.summary.modelError!, this.tag) : judgedResults(b.rows, runs, labels, this.topK, this.tag));
  }

  private write(results: Layer3Result[]): void {
    this.writer.push(results);
    for (const r of results) {
      if (r.score !== null) this.summary.scored++;
      if (r.findings.some((f) => f.rule === 'layer3.model_disagrees')) this.summary.disagreements++;
      if (r.score === null && !r.passed) this.summary.failed++;
    }
    heartbeat({ done: this.summary.scored + this.summary.failed });
  }

  /** The batch's unscored samples, only this call's arm under a gray release. */
  private batches(): AsyncGenerator<UnscoredSample[]> {
    const rollout = this.rollout;
    const input = this.input;
    return unscoredBatches(this.deps, input, rollout !== undefined, async (rows) => {
      if (!rollout) return rows;
      const arms = await Promise.all(rows.map((r) => this.splits.armOf(rollout, { project: input.project, sampleId: r.id, annotators: r.annotators })));
      return rows.filter((_, i) => arms[i] === input.arm);
    });
  }
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
