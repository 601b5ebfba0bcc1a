import { mkdirSync, openSync, closeSync, readSync, writeSync, readFileSync, writeFileSync, fstatSync } from 'node:fs';
import * as path from 'node:path';
import { decodeModel, encodeModel, onnx, OnnxFormatError } from './proto';
import { tensorBytes } from './tensor';

/** Protobuf cannot serialise a message of 2 GiB or more; past this much tensor data, weights go to a side file. */
const INLINE_LIMIT = 1.8 * 1024 ** 3;
/** External data entries start on page boundaries, as onnx's own writer does, so they can be memory-mapped. */
const ALIGN = 4096;

function allTensors(g: onnx.IGraphProto): onnx.ITensorProto[] {
  const out = [...(g.initializer ?? [])];
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.t) out.push(a.t);
      if (a.g) out.push(...allTensors(a.g));
      for (const sub of a.graphs ?? []) out.push(...allTensors(sub));
    }
  }
  return out;
}

/**
 * The file an external-data location names, resolved against the model's folder. An absolute path or one
 * that climbs out of the folder is refused: a model file must not make us read arbitrary files.
 */
export function externalDataPath(modelDir: string, location: string): string {
  const resolved = path.resolve(modelDir, location);
  const rel = path.relative(modelDir, resolved);
  if (path.isAbsolute(location) || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new OnnxFormatError(`external data location ${JSON.stringify(location)} is outside the model's folder ${modelDir}; refusing to read it`);
  }
  return resolved;
}

/** Reads an .onnx file and pulls any external tensor data into memory (rawData), checking every location. */
export function readModelFile(file: string): onnx.ModelProto {
  const model = decodeModel(readFileSync(file));
  const dir = path.dirname(path.resolve(file));
  const handles = new Map<string, number>();
  try {
    for (const t of allTensors(model.graph!)) {
      if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
      const kv = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value ?? '']));
      if (!kv.location) throw new OnnxFormatError(`tensor ${t.name}: external data without a location`);
      const p = externalDataPath(dir, kv.location);
      let fd = handles.get(p);
      if (fd === undefined) {
        try {
          fd = openSync(p, 'r');
        } catch (err) {
          throw new OnnxFormatError(`tensor ${t.name}: external data file ${kv.location} cannot be read (${(err as Error).message}); keep it beside the model`);
        }
        handles.set(p, fd);
      }
      const offset = Number(kv.offset ?? 0);
      const length = kv.length !== undefined ? Number(kv.length) : fstatSync(fd).size - offset;
      const buf = Buffer.alloc(length);
      const got = readSync(fd, buf, 0, length, offset);
      if (got !== length) throw new OnnxFormatError(`tensor ${t.name}: external data file ${kv.location} is truncated (${got} of ${length} bytes at offset ${offset})`);
      t.rawData = buf;
      t.externalData = [];
      t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
    }
  } finally {
    for (const fd of handles.values()) closeSync(fd);
  }
  return model;
}

export interface WriteOptions {
  /** `auto` (default): external only when the model would not fit in one protobuf; `always`; `never`. */
  externalData?: 'auto' | 'always' | 'never';
  /** Tensors smaller than this stay inline even when writing external data. */
  sizeThreshold?: number;
  /** `auto` goes external past this many bytes of tensor data (default just under protobuf's 2 GiB; tests lower it). */
  inlineLimit?: number;
}

/**
 * Writes a model; with external data, large tensors go to `<name>.onnx.data` beside it (page-aligned, the
 * location relative to the model's folder). The model object passed in is left as it was.
 */
export function writeModelFile(file: string, model: onnx.IModelProto, o: WriteOptions = {}): { bytes: number; externalFile?: string } {
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tensors = allTensors(model.graph!);
  const total = tensors.reduce((s, t) => s + tensorBytes(t).length, 0);
  const external = o.externalData === 'always' || (o.externalData !== 'never' && total > (o.inlineLimit ?? INLINE_LIMIT));
  if (!external) {
    const bytes = encodeModel(model);
    writeFileSync(file, bytes);
    return { bytes: bytes.length };
  }
  const dataName = `${path.basename(file)}.data`;
  const dataPath = path.join(path.dirname(path.resolve(file)), dataName);
  const threshold = o.sizeThreshold ?? 1024;
  const saved = new Map<onnx.ITensorProto, Pick<onnx.ITensorProto, 'rawData' | 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'externalData' | 'dataLocation'>>();
  const fd = openSync(dataPath, 'w');
  let offset = 0;
  try {
    for (const t of tensors) {
      const bytes = tensorBytes(t);
      if (bytes.length < threshold) continue;
      const start = Math.ceil(offset / ALIGN) * ALIGN;
      writeSync(fd, bytes, 0, bytes.length, start);
      offset = start + bytes.length;
      saved.set(t, { rawData: t.rawData, floatData: t.floatData, int32Data: t.int32Data, int64Data: t.int64Data, doubleData: t.doubleData, externalData: t.externalData, dataLocation: t.dataLocation });
      Object.assign(t, {
        rawData: new Uint8Array(0), floatData: [], int32Data: [], int64Data: [], doubleData: [],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [{ key: 'location', value: dataName }, { key: 'offset', value: String(start) }, { key: 'length', value: String(bytes.length) }],
      });
    }
  } finally {
    closeSync(fd);
  }
  try {
    const bytes = encodeModel(model);
    writeFileSync(file, bytes);
    return { bytes: bytes.length + offset, externalFile: dataPath };
  } finally {
    // Give the caller's model its data back.
    for (const [t, s] of saved) Object.assign(t, s);
  }
}
