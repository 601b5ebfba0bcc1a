import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { transferables, type CreatedSession, type PlainTensor, type RunResult, type ThreadRequest, type ThreadResponse, type ThreadValue } from './onnx-thread-protocol';

export type { PlainTensor, RunResult } from './onnx-thread-protocol';

/** Omit distributed over the union, so each request keeps its own fields. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
type Request = WithoutId<ThreadRequest>;

/** An onnxruntime session that lives on the onnxruntime thread. */
export interface ThreadSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** False once released, or once the thread it lived on has exited. */
  readonly alive: boolean;
  /**
   * Runs the model off the main thread. The feeds' buffers move to that thread (no copy of a batch of
   * images), so they are unusable here afterwards. `computeMs` is the thread's own time in onnxruntime, so a
   * run queued behind another is not charged for the wait.
   */
  run(feeds: Record<string, PlainTensor>, fetches: string[]): Promise<RunResult>;
  release(): Promise<void>;
}

export class OrtThreadExited extends Error {
  override name = 'OrtThreadExited';
}

/** How long close() lets the thread finish its runs in flight before it is terminated. */
const CLOSE_GRACE_MS = 30_000;

/**
 * One worker thread that owns onnxruntime sessions. onnxruntime-node computes `session.run` on the calling
 * thread, so on the main thread every batch would stall tokenizing, Postgres I/O and Temporal heartbeats;
 * here they overlap with inference. Started on first use; kept referenced only while calls are pending, so
 * an idle thread does not keep the process alive.
 */
export class OrtThread {
  private worker: Worker | undefined;
  private generation = 0;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: ThreadValue) => void; reject: (e: Error) => void }>();

  async createSession(bytes: Uint8Array, provider: string, intraOpThreads: number): Promise<ThreadSession> {
    // The thread that will hold the session: if it dies while creating, the call rejects anyway.
    const generation = this.generation;
    // A copy, not a transfer: the caller may try the same bytes with the next provider.
    const created = (await this.call({ op: 'create', bytes, provider, intraOpThreads })) as CreatedSession;
    let released = false;
    const alive = (): boolean => !released && generation === this.generation;
    return {
      inputNames: created.inputNames,
      outputNames: created.outputNames,
      get alive() {
        return alive();
      },
      run: async (feeds, fetches) => {
        if (!alive()) throw new OrtThreadExited(`onnxruntime session ${created.session} is gone (released, or its thread exited); load the model again`);
        return (await this.call({ op: 'run', session: created.session, feeds, fetches }, transferables(Object.values(feeds)))) as RunResult;
      },
      release: async () => {
        if (!alive()) return;
        released = true;
        await this.call({ op: 'release', session: created.session });
      },
    };
  }

  /**
   * Callers waiting on the thread get OrtThreadExited at once; the thread itself finishes the runs it has
   * begun and exits (terminated mid-run, onnxruntime-node aborted the process). Terminated only if it has
   * not exited after CLOSE_GRACE_MS.
   */
  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.fail(w, 'was closed');
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage({ id: 0, op: 'close' } satisfies ThreadRequest);
    const timer = setTimeout(() => void w.terminate(), CLOSE_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  private call(req: Request, transfer: ArrayBuffer[] = []): Promise<ThreadValue> {
    const w = this.start();
    const id = this.nextId++;
    return new Promise<ThreadValue>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ ...req, id }, transfer);
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const entry = path.join(__dirname, `onnx-thread-main${path.extname(__filename)}`);
    // Run as TypeScript (tsx), the thread needs tsx's CommonJS hooks too: worker threads do not inherit them.
    const w = entry.endsWith('.ts')
      ? new Worker(`require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(entry)});`, { eval: true })
      : new Worker(entry);
    w.unref();
    w.on('message', (res: ThreadResponse) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (this.pending.size === 0) w.unref();
      if (res.ok) p.resolve(res.value);
      else p.reject(new Error(res.message));
    });
    w.on('error', (err) => this.fail(w, `failed: ${err.message}`));
    w.on('exit', (code) => this.fail(w, `exited with code ${code}`));
    this.worker = w;
    return w;
  }

  /** Its sessions die with the thread: callers get an error now, and the session cache reloads on next use. */
  private fail(w: Worker, why: string): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    this.generation++;
    for (const p of this.pending.values()) p.reject(new OrtThreadExited(`the onnxruntime thread ${why}; its sessions are reloaded on the next batch`));
    this.pending.clear();
  }
}
