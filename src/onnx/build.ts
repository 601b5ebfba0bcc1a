import { onnx } from './proto';

/** Small constructors for hand-built graphs (fixtures, reference models); attribute types inferred from values. */

export type Dim = number | string;
export const F32 = onnx.TensorProto.DataType.FLOAT;
export const I64 = onnx.TensorProto.DataType.INT64;

export function floatTensor(name: string, dims: number[], data: ArrayLike<number>): onnx.ITensorProto {
  const n = dims.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`tensor ${name}: ${data.length} values for dims [${dims.join(',')}]`);
  return { name, dims, dataType: F32, rawData: new Uint8Array(Float32Array.from(data).buffer) };
}

export function int64Tensor(name: string, dims: number[], data: ArrayLike<number>): onnx.ITensorProto {
  return { name, dims, dataType: I64, rawData: new Uint8Array(BigInt64Array.from(Array.from(data, (v) => BigInt(v))).buffer) };
}

export function valueInfo(name: string, elemType: number, shape: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

type AttrValue = number | string | number[] | { float: number };

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (typeof v === 'object') return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.INT, i: v };
}

export function node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): onnx.INodeProto {
  return { opType, input: inputs, output: outputs, name: name ?? `${opType}_${outputs[0]}`, attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) };
}

export interface GraphSpec {
  name: string;
  inputs: onnx.IValueInfoProto[];
  outputs: onnx.IValueInfoProto[];
  nodes: onnx.INodeProto[];
  initializers: onnx.ITensorProto[];
  opset?: number;
  metadata?: Record<string, string>;
}

export function model(g: GraphSpec): onnx.IModelProto {
  return {
    irVersion: 8,
    producerName: 'qcflow',
    opsetImport: [{ domain: '', version: g.opset ?? 13 }],
    graph: { name: g.name, input: g.inputs, output: g.outputs, node: g.nodes, initializer: g.initializers },
    metadataProps: Object.entries(g.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
}
