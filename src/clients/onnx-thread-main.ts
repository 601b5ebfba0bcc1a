/**
 * Entry point of the onnxruntime thread. onnxruntime-node's `session.run` computes on the calling thread
 * (its promise only defers the start), so sessions live here, off the main thread that tokenizes, talks to
 * Postgres and heartbeats to Temporal.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { transferables, type PlainTensor, type RunResult, type TensorType, type ThreadRequest, type ThreadResponse, type ThreadValue } from './onnx-thread-protocol';

const port = parentPort;
if (!port) throw new Error('onnx-thread-main runs as a worker thread; import src/clients/onnx-thread instead');

const sessions = new Map<number, ort.InferenceSession>();
let nextSession = 1;

function session(id: number): ort.InferenceSession {
  const s = sessions.get(id);
  if (!s) throw new Error(`onnxruntime session ${id} was released`);
  return s;
}

async function handle(req: ThreadRequest): Promise<{ value: ThreadValue; transfer: ArrayBuffer[] }> {
  switch (req.op) {
    case 'create': {
      const s = await ort.InferenceSession.create(req.bytes, { executionProviders: [req.provider], intraOpNumThreads: req.intraOpThreads, graphOptimizationLevel: 'all' });
      const id = nextSession++;
      sessions.set(id, s);
      return { value: { session: id, inputNames: [...s.inputNames], outputNames: [...s.outputNames] }, transfer: [] };
    }
    case 'run': {
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(req.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, [...t.dims]);
      const started = performance.now();
      const result = await session(req.session).run(feeds, req.fetches);
      const computeMs = performance.now() - started;
      const out: Record<string, PlainTensor> = {};
      for (const [name, t] of Object.entries(result)) out[name] = { type: t.type as TensorType, data: t.data as PlainTensor['data'], dims: [...t.dims] };
      return { value: { outputs: out, computeMs } satisfies RunResult, transfer: transferables(Object.values(out)) };
    }
    case 'release': {
      const s = sessions.get(req.session);
      sessions.delete(req.session);
      await s?.release();
      return { value: null, transfer: [] };
    }
    case 'close':
      throw new Error('internal: close is not a request with a reply');
  }
}

const inFlight = new Set<Promise<unknown>>();

// Closing waits for the runs in flight: a thread terminated while onnxruntime computes on it aborted the
// whole process ("terminate called after throwing an instance of 'Napi::Error'") when the run completed.
async function close(): Promise<void> {
  await Promise.allSettled([...inFlight]);
  await Promise.allSettled([...sessions.values()].map((s) => s.release()));
  sessions.clear();
  port!.close();
}

port.on('message', (req: ThreadRequest) => {
  if (req.op === 'close') {
    void close();
    return;
  }
  const done = handle(req).then(
    ({ value, transfer }) => port.postMessage({ id: req.id, ok: true, value } satisfies ThreadResponse, transfer),
    (err: unknown) => port.postMessage({ id: req.id, ok: false, message: err instanceof Error ? err.message : String(err) } satisfies ThreadResponse),
  );
  inFlight.add(done);
  void done.finally(() => inFlight.delete(done));
});
