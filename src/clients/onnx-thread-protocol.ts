/** Messages between the main thread and the onnxruntime thread (src/clients/onnx-thread.ts). */

export type TensorType = 'float32' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool' | 'float16';
export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int8Array | Uint8Array | Uint16Array;

/** A tensor as plain data, so it can cross threads (onnxruntime's Tensor objects cannot). */
export interface PlainTensor {
  type: TensorType;
  data: TensorData;
  dims: readonly number[];
}

export type ThreadRequest =
  | { id: number; op: 'create'; bytes: Uint8Array; provider: string; intraOpThreads: number }
  | { id: number; op: 'run'; session: number; feeds: Record<string, PlainTensor>; fetches: string[] }
  | { id: number; op: 'release'; session: number }
  /** Finish what is in flight, release every session and end the thread. */
  | { id: number; op: 'close' };

export interface CreatedSession {
  session: number;
  inputNames: string[];
  outputNames: string[];
}

/** A run's outputs and how long onnxruntime computed them on its thread (not counting the wait in its queue). */
export interface RunResult {
  outputs: Record<string, PlainTensor>;
  computeMs: number;
}

export type ThreadValue = CreatedSession | RunResult | null;

export type ThreadResponse =
  | { id: number; ok: true; value: ThreadValue }
  | { id: number; ok: false; message: string };

/** The buffers a message can hand over without a copy: each typed array's own, whole, non-shared buffer. */
export function transferables(tensors: Iterable<PlainTensor>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const t of tensors) {
    const b = t.data.buffer;
    if (b instanceof ArrayBuffer && t.data.byteOffset === 0 && t.data.byteLength === b.byteLength) out.add(b);
  }
  return [...out];
}
