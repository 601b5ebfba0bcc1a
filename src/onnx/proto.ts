import { onnx } from 'onnx-proto';

export { onnx };

/** ONNX bytes ← model. The one place models are serialised, so every writer emits the same IR. */
export function encodeModel(model: onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

export class OnnxFormatError extends Error {
  override name = 'OnnxFormatError';
}

/** Model ← ONNX bytes; a truncated or non-ONNX file fails here with a message saying so. */
export function decodeModel(bytes: Uint8Array): onnx.ModelProto {
  try {
    const m = onnx.ModelProto.decode(bytes);
    if (!m.graph) throw new Error('no graph');
    return m;
  } catch (err) {
    throw new OnnxFormatError(`not a valid ONNX model (${(err as Error).message}); check that the file is a complete .onnx export`);
  }
}
