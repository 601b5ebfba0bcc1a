import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { QuantizeError } from './types';
import type { EvaluationMetrics, ModelSource } from './evaluate';
import type { GoldenOutput } from './golden-outputs';

/** onnxruntime died (a signal, not an exception) loading or running the model: it is unusable here. */
export class OnnxruntimeCrashed extends Error {
  override name = 'OnnxruntimeCrashed';
}

interface Options {
  output?: string;
  /** goldenOutputs: these outputs alone (those stored at registration). */
  outputs?: string[];
  runs?: number;
  providers?: string[];
  /** Kills the child (an activity's cancellation). */
  signal?: AbortSignal;
  /** Called at each sign of life from the child (a sample evaluated, a timed run): an activity heartbeats there. */
  progress?: () => void;
  /** The child is killed when it shows no sign of life for this long (default STALL_MS). */
  stallMs?: number;
}

/**
 * How long the child may go without finishing a sample or a timed run before it is taken for hung and
 * killed. Loading is inside it too: a few seconds for the largest models here (the 54 MB recogniser).
 * An evaluation may run an hour; a hung one now ends as a named failure within this instead.
 */
export const STALL_MS = 5 * 60_000;

/** What the child (src/quantize/evaluate-child.ts) is asked: paths to read, and what to compute. */
export type ChildRequest = { golden: string; output?: string; outputs?: string[]; runs?: number; providers?: string[] } & (
  | { op: 'evaluate'; reference: string; candidate: string }
  | { op: 'outputs'; model: string });

/**
 * evaluateCandidate in a child process of its own. A quantized graph can hit a crash in onnxruntime's own
 * optimizers or kernels — a torch-exported transformer at fp16 segfaults onnxruntime 1.30 (Node) and 1.32
 * (Python) on x86 at graph optimization level "all" (a Transpose 1,0,2 before an fp16 MatMul:
 * NchwcTransformer) — and in-process that takes the whole worker down, again on every retry. Here it is
 * OnnxruntimeCrashed, naming the signal; a QuantizeError in the child stays a QuantizeError.
 */
export function evaluateIsolated(reference: ModelSource, candidate: ModelSource, golden: string, o: Options = {}): Promise<EvaluationMetrics> {
  return inChild<EvaluationMetrics>((file) => ({ op: 'evaluate', reference: file(reference, 'reference.onnx'), candidate: file(candidate, 'candidate.onnx') }), golden, o);
}

/** goldenOutputs in a child process of its own: registering a model that crashes onnxruntime must not take the registering process with it. */
export function goldenOutputsIsolated(model: ModelSource, golden: string, o: Options = {}): Promise<GoldenOutput[]> {
  return inChild<GoldenOutput[]>((file) => ({ op: 'outputs', model: file(model, 'model.onnx') }), golden, o);
}

async function inChild<T>(models: (file: (m: ModelSource, name: string) => string) => Omit<ChildRequest, 'golden'>, golden: string, o: Options): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-evaluate-'));
  try {
    // A model given by path is read there; bytes are written for the child to read.
    const file = (m: ModelSource, name: string): string => {
      if (typeof m === 'string') return path.resolve(m);
      writeFileSync(path.join(dir, name), m);
      return path.join(dir, name);
    };
    const request = { ...models(file), golden: path.join(dir, 'golden.jsonl'), output: o.output, outputs: o.outputs, runs: o.runs, providers: o.providers } as ChildRequest;
    writeFileSync(request.golden, golden);
    // The same loader flags as this process (tsx in development), so the child runs wherever the worker does.
    const child = fork(path.join(__dirname, `evaluate-child${path.extname(__filename)}`), [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], signal: o.signal });
    return await new Promise<T>((resolve, reject) => {
      let answer: { value?: T; error?: { name: string; message: string } } | undefined;
      const stallMs = o.stallMs ?? STALL_MS;
      let stalled = false;
      let watchdog: NodeJS.Timeout | undefined;
      const alive = (): void => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          stalled = true;
          child.kill('SIGKILL');
        }, stallMs);
      };
      alive();
      child.on('message', (m: { progress?: true } & NonNullable<typeof answer>) => {
        if (m.progress) {
          alive();
          o.progress?.();
        } else answer = m;
      });
      // An abort surfaces as 'error' (AbortError) before 'exit'.
      child.once('error', (err) => {
        clearTimeout(watchdog);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(watchdog);
        if (answer?.value !== undefined) return resolve(answer.value);
        if (stalled) return reject(new OnnxruntimeCrashed(`onnxruntime stopped responding loading or running the model (no sample finished in ${stallMs / 1000} s), so it was stopped: it is not usable with this onnxruntime on this CPU`));
        if (answer?.error) return reject(answer.error.name === 'QuantizeError' ? new QuantizeError(answer.error.message) : new Error(`${answer.error.name}: ${answer.error.message}`));
        reject(new OnnxruntimeCrashed(`onnxruntime crashed (${signal ?? `exit code ${code}`}) loading or running the model: it is not usable with this onnxruntime on this CPU`));
      });
      child.send(request);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
