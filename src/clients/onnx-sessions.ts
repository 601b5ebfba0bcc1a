import { sha256Hex } from '../util/canonical-json';
import type { Logger } from './logger';
import { OrtThread, type ThreadSession } from './onnx-thread';

export interface SessionCacheOptions {
  /** Execution providers in order of preference, e.g. ['cuda', 'cpu']; the first that loads the model is used. */
  providers: string[];
  intraOpThreads: number;
  maxSessions: number;
  /** Bound on the summed ONNX file sizes of resident sessions (a proxy for their memory). */
  maxBytes: number;
  log: Logger;
  /** Where the sessions live; a fresh thread unless given. */
  thread?: OrtThread;
}

export interface CacheStats {
  hits: number;
  misses: number;
  /** Requests that joined a load already in flight instead of loading again. */
  coalesced: number;
  evictions: number;
  loadFailures: number;
  sessions: number;
  bytes: number;
  /** Preferred providers that failed where a later one worked; not tried again by this worker. */
  skippedProviders: string[];
}

export interface LoadedSession {
  /** Lives on the cache's onnxruntime thread, so a batch's inference overlaps this thread's work. */
  session: ThreadSession;
  sha256: string;
  bytes: number;
  /** The execution provider that actually loaded the model. */
  provider: string;
}

interface Entry extends LoadedSession {
  users: number;
  evicted: boolean;
}

export class ModelIntegrityError extends Error {
  override name = 'ModelIntegrityError';
}

export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
}

/**
 * onnxruntime sessions keyed by the model file's sha256: loaded once per worker, with concurrent requests
 * for the same version sharing one load, evicted least-recently-used when either bound is exceeded. A
 * session in use when it is evicted is released only after its last user is done.
 */
export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private readonly counts = { hits: 0, misses: 0, coalesced: 0, evictions: 0, loadFailures: 0 };
  private readonly unavailable = new Set<string>();
  private readonly thread: OrtThread;

  constructor(private readonly opts: SessionCacheOptions) {
    this.thread = opts.thread ?? new OrtThread();
  }

  stats(): CacheStats {
    let bytes = 0;
    for (const e of this.entries.values()) bytes += e.bytes;
    return { ...this.counts, sessions: this.entries.size, bytes, skippedProviders: [...this.unavailable] };
  }

  /** Runs `fn` with the session of model `sha256`, loading (and verifying) `load()`'s bytes on a miss. */
  async with<T>(sha256: string, load: () => Promise<Uint8Array>, fn: (s: LoadedSession) => Promise<T>): Promise<T> {
    const entry = await this.acquire(sha256, load);
    try {
      return await fn(entry);
    } finally {
      entry.users--;
      if (entry.evicted && entry.users === 0) await entry.session.release().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    for (const key of [...this.entries.keys()]) await this.evict(key);
    await this.thread.close();
  }

  private async acquire(sha256: string, load: () => Promise<Uint8Array>): Promise<Entry> {
    let resident = this.entries.get(sha256);
    if (resident && !resident.session.alive) {
      // Its thread exited (an uncaught error, its heap limit, a close): load it again on a fresh one.
      this.opts.log.warn({ sha256 }, 'onnx session lost with its thread; reloading');
      this.entries.delete(sha256);
      resident = undefined;
    }
    if (resident) {
      this.counts.hits++;
      // Map order is the LRU order: re-inserting marks it most recently used.
      this.entries.delete(sha256);
      this.entries.set(sha256, resident);
      resident.users++;
      return resident;
    }
    const inflight = this.loading.get(sha256);
    if (inflight) {
      this.counts.coalesced++;
      const e = await inflight;
      e.users++;
      return e;
    }
    this.counts.misses++;
    const p = this.load(sha256, load);
    this.loading.set(sha256, p);
    try {
      const e = await p;
      e.users++;
      return e;
    } catch (err) {
      this.counts.loadFailures++;
      throw err;
    } finally {
      this.loading.delete(sha256);
    }
  }

  private async load(sha256: string, load: () => Promise<Uint8Array>): Promise<Entry> {
    const bytes = await load();
    const actual = sha256Hex(bytes);
    if (actual !== sha256) throw new ModelIntegrityError(`model file sha256 is ${actual}, registered ${sha256}: the stored object was changed or corrupted; re-register the model`);
    const { session, provider } = await this.createSession(bytes, sha256);
    const entry: Entry = { session, sha256, bytes: bytes.byteLength, provider, users: 0, evicted: false };
    this.entries.set(sha256, entry);
    await this.enforceBounds(sha256);
    const s = this.stats();
    this.opts.log.info({ sha256, provider, inputs: session.inputNames, outputs: session.outputNames, cache: s }, 'onnx session loaded');
    return entry;
  }

  private async createSession(bytes: Uint8Array, sha256: string): Promise<{ session: ThreadSession; provider: string }> {
    const errors: string[] = [];
    const providers = this.opts.providers.filter((p) => !this.unavailable.has(p));
    for (const provider of providers) {
      try {
        const session = await this.thread.createSession(bytes, provider, this.opts.intraOpThreads);
        if (errors.length) {
          // The model loads, so the earlier providers are missing from this machine, not unfit for this model.
          for (const p of providers.slice(0, providers.indexOf(provider))) this.unavailable.add(p);
          this.opts.log.warn({ sha256, provider, skipped: errors }, 'preferred execution provider unavailable; fell back (not retried by this worker)');
        }
        return { session, provider };
      } catch (err) {
        errors.push(`${provider}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    throw new ModelLoadError(`onnxruntime could not load the model with any of [${providers.join(', ')}]: ${errors.join('; ')}`);
  }

  private async enforceBounds(keep: string): Promise<void> {
    const over = (): boolean => {
      const s = this.stats();
      return s.sessions > this.opts.maxSessions || s.bytes > this.opts.maxBytes;
    };
    for (const key of [...this.entries.keys()]) {
      if (!over()) break;
      if (key !== keep) await this.evict(key);
    }
  }

  private async evict(key: string): Promise<void> {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.counts.evictions++;
    e.evicted = true;
    this.opts.log.info({ sha256: key, bytes: e.bytes, cache: this.stats() }, 'onnx session evicted');
    if (e.users === 0) await e.session.release().catch(() => undefined);
  }
}
