import { createRequire } from 'node:module';
import { onnx } from 'onnx-proto';

export { onnx };

/** The protobufjs runtime onnx-proto's generated code was built against (its own copy, not the app's). */
interface ProtoReader { pos: number; len: number; buf: Uint8Array; uint32(): number; skipType(wireType: number): ProtoReader }
interface ProtoWriter { uint32(value: number): ProtoWriter; fork(): ProtoWriter; ldelim(): ProtoWriter }
const protobuf = createRequire(require.resolve('onnx-proto'))('protobufjs/minimal') as { Reader: { create(buf: Uint8Array): ProtoReader } };

type Entries = onnx.IStringStringEntryProto[];
declare module 'onnx-proto' {
  namespace onnx {
    // IR 10's per-node, per-graph, per-value and per-tensor metadata (see keepMetadataProps).
    interface INodeProto { metadataProps?: Entries | null }
    interface IGraphProto { metadataProps?: Entries | null }
    interface IValueInfoProto { metadataProps?: Entries | null }
    interface ITensorProto { metadataProps?: Entries | null }
    interface IFunctionProto { metadataProps?: Entries | null }
  }
}

interface Codec {
  decode(input: ProtoReader | Uint8Array, length?: number): object;
  encode(message: object, writer?: ProtoWriter): ProtoWriter;
}

/**
 * onnx-proto's schema is IR 8: it has no `metadata_props` on nodes, graphs, values, tensors or functions
 * (IR 10), and its decoders skip fields they do not know, so a model re-encoded here lost them — torch.export
 * writes five entries per node (module path, stack trace, FX node: 22% of a small transformer's file) and
 * onnxruntime's tools keep them. Each of those types' decode and encode is wrapped to read and write that
 * one field (repeated StringStringEntryProto) as `metadataProps`; the generated code reaches nested
 * messages through the same objects, so a model's every node and value keeps its metadata.
 */
function keepMetadataProps(type: Codec, field: number): void {
  const decode = type.decode.bind(type);
  const encode = type.encode.bind(type);
  type.decode = (input, length) => {
    const reader = input instanceof Uint8Array ? protobuf.Reader.create(input) : input;
    const end = length === undefined ? reader.len : reader.pos + length;
    const scan = protobuf.Reader.create(reader.buf.subarray(reader.pos, end));
    const entries: Entries = [];
    while (scan.pos < scan.len) {
      const tag = scan.uint32();
      if (tag >>> 3 === field && (tag & 7) === 2) entries.push(onnx.StringStringEntryProto.decode(scan as never, scan.uint32()));
      else scan.skipType(tag & 7);
    }
    const message = decode(reader, length) as { metadataProps?: Entries };
    if (entries.length > 0) message.metadataProps = entries;
    return message;
  };
  type.encode = (message, writer) => {
    const out = encode(message, writer);
    for (const e of (message as { metadataProps?: Entries | null }).metadataProps ?? []) {
      (onnx.StringStringEntryProto.encode(e, out.uint32((field << 3) | 2).fork() as never) as unknown as ProtoWriter).ldelim();
    }
    return out;
  };
}
keepMetadataProps(onnx.NodeProto, 9);
keepMetadataProps(onnx.GraphProto, 16);
keepMetadataProps(onnx.ValueInfoProto, 4);
keepMetadataProps(onnx.TensorProto, 16);
keepMetadataProps(onnx.FunctionProto, 14);

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
