import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { QuantizeError } from './types';
import type { EvaluationMetrics, ModelSource } from './evaluate';

/** onnxruntime died (a signal, not an exception) loading or running the candidate: the candidate is unusable here. */
export class CandidateCrashed extends Error {
  override name = 'CandidateCrashed';
}

/**
 * evaluateCandidate in a child process of its own (src/quantize/evaluate-child.ts). A quantized graph can
 * hit a crash in onnxruntime's own optimizers or kernels — a torch-exported transformer at fp16 segfaults
 * onnxruntime 1.30 (Node) and 1.32 (Python) on x86 at graph optimization level "all" (a Transpose 1,0,2 before
 * an fp16 MatMul: NchwcTransformer) — and in-process that takes the whole
 * worker down, again on every retry. Here it is CandidateCrashed, naming the signal; a QuantizeError in the
 * child stays a QuantizeError.
 */
export async function evaluateIsolated(reference: ModelSource, candidate: ModelSource, golden: string, o: { output?: string; runs?: number; providers?: string[]; signal?: AbortSignal } = {}): Promise<EvaluationMetrics> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-evaluate-'));
  try {
    // A model given by path is read there; bytes are written for the child to read.
    const file = (m: ModelSource, name: string): string => {
      if (typeof m === 'string') return path.resolve(m);
      writeFileSync(path.join(dir, name), m);
      return path.join(dir, name);
    };
    const files = { reference: file(reference, 'reference.onnx'), candidate: file(candidate, 'candidate.onnx'), golden: path.join(dir, 'golden.jsonl') };
    writeFileSync(files.golden, golden);
    // The same loader flags as this process (tsx in development), so the child runs wherever the worker does;
    // `signal` (an activity's cancellation) kills it.
    const child = fork(path.join(__dirname, `evaluate-child${path.extname(__filename)}`), [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], signal: o.signal });
    return await new Promise<EvaluationMetrics>((resolve, reject) => {
      let answer: { metrics?: EvaluationMetrics; error?: { name: string; message: string } } | undefined;
      child.once('message', (m: typeof answer) => { answer = m; });
      // An abort surfaces as 'error' (AbortError) before 'exit'.
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        if (answer?.metrics) return resolve(answer.metrics);
        if (answer?.error) return reject(answer.error.name === 'QuantizeError' ? new QuantizeError(answer.error.message) : new Error(`${answer.error.name}: ${answer.error.message}`));
        reject(new CandidateCrashed(`onnxruntime crashed (${signal ?? `exit code ${code}`}) loading or running the candidate: it is not usable with this onnxruntime on this CPU`));
      });
      child.send({ ...files, output: o.output, runs: o.runs, providers: o.providers });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
