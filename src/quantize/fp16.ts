import { onnx } from '../onnx/proto';
import { node as makeNode } from '../onnx/build';
import { GraphIndex, topologicalSort } from '../onnx/graph';
import { DT, float32ToFloat16Bits, floatValues, makeTensor } from '../onnx/tensor';
import type { NodeOutcome } from './types';

/** Output element types of ops whose outputs do not simply follow their first input. */
function outputTypes(n: onnx.INodeProto, inputType: (i: number) => number | undefined): Array<number | undefined> {
  const to = (n.attribute ?? []).find((a) => a.name === 'to')?.i;
  switch (n.opType) {
    case 'Cast': return [Number(to)];
    case 'Shape': case 'Size': case 'NonZero': case 'ArgMax': case 'ArgMin': return [DT.INT64];
    case 'Equal': case 'Less': case 'Greater': case 'LessOrEqual': case 'GreaterOrEqual': case 'Not': case 'And': case 'Or': case 'Xor': case 'IsNaN': case 'IsInf': return [DT.BOOL];
    case 'TopK': return [inputType(0), DT.INT64];
    case 'Where': return [inputType(1)];
    case 'DynamicQuantizeLinear': return [DT.UINT8, DT.FLOAT, DT.UINT8];
    case 'QuantizeLinear': return [inputType(2) ?? DT.UINT8];
    case 'DequantizeLinear': return [DT.FLOAT];
    case 'MatMulInteger': case 'ConvInteger': return [DT.INT32];
    case 'ConstantOfShape': {
      const v = (n.attribute ?? []).find((a) => a.name === 'value')?.t;
      return [v?.dataType ?? DT.FLOAT];
    }
    case 'Constant': {
      const v = (n.attribute ?? []).find((a) => a.name === 'value')?.t;
      return [v?.dataType ?? undefined];
    }
    default: return (n.output ?? []).map(() => inputType(0));
  }
}

/** Inputs that the op's schema types as float32 whatever its data type (Resize's roi and scales). */
const FP32_INPUTS: Record<string, number[]> = { Resize: [1, 2], Upsample: [1] };

const keepsFp32 = (n: onnx.INodeProto, i: number): boolean => FP32_INPUTS[n.opType!]?.includes(i) ?? false;

/**
 * Ops whose schema takes no float16 for their float inputs (onnxruntime rejects the model at load):
 * Range (YOLOv8's exported anchor grid), NonMaxSuppression, DynamicQuantizeLinear (a model quantized
 * before), QuantizeLinear before opset 19 and CumSum before 14 (kept fp32 at every opset: rare, cheap).
 * They stay fp32 behind Casts, as onnxruntime's float16 converter's default block list keeps them.
 */
const NO_FLOAT16 = new Set(['Range', 'NonMaxSuppression', 'DynamicQuantizeLinear', 'QuantizeLinear', 'CumSum']);

/** Why `n` computes in fp32 whatever is asked, or undefined: its schema has no float16, or it is another domain's op. */
function noFloat16(n: onnx.INodeProto): string | undefined {
  if (n.domain && n.domain !== 'ai.onnx') return `a ${n.domain} op: its float16 support is not known here`;
  return NO_FLOAT16.has(n.opType!) ? `${n.opType} takes no float16 (ONNX schema)` : undefined;
}

/**
 * fp16 conversion with fp32 graph inputs and outputs kept (a Cast at each edge): float initializers become
 * float16, ops compute in float16, and blocked nodes (by name or op type) stay in fp32 behind Casts.
 * Element types are propagated through the graph so only float values are cast (never shapes or indices).
 */
export function convertToFloat16(g: onnx.IGraphProto, o: { excludeNodes: Set<string>; excludeOps: Set<string> }): NodeOutcome[] {
  const index = new GraphIndex(g);
  const types = new Map<string, number | undefined>();
  for (const v of g.input ?? []) types.set(v.name!, v.type?.tensorType?.elemType ?? undefined);
  for (const t of index.initializers.values()) types.set(t.name!, t.dataType ?? undefined);
  const order = topologicalSort(g);
  for (const n of order) {
    const outs = outputTypes(n, (i) => types.get(n.input?.[i] ?? ''));
    (n.output ?? []).forEach((name, i) => types.set(name, outs[i]));
  }
  const isFloat = (name: string): boolean => types.get(name) === DT.FLOAT;
  // A node whose constant inputs do not fit float16 (BatchNorm running variances often exceed 65504) would
  // compute with infinities: it stays fp32 on its own, and the report says why.
  const FP16_MAX = 65504;
  // Each initializer is scanned once, however many nodes read it.
  const tooLarge = new Set((g.initializer ?? []).filter((t) => t.dataType === DT.FLOAT && floatValues(t).some((v) => Math.abs(v) > FP16_MAX)).map((t) => t.name!));
  const outOfRange = new Set(order.filter((n) => (n.input ?? []).some((i) => tooLarge.has(i))));
  const blocked = (n: onnx.INodeProto): boolean => o.excludeNodes.has(n.name || n.output![0]!) || o.excludeOps.has(n.opType!) || outOfRange.has(n) || noFloat16(n) !== undefined;

  // Which initializers fp32 (blocked) nodes read, and which fp16 ones do: one read by both is kept in both forms.
  const fp32Readers = new Set<string>();
  const fp16Readers = new Set<string>();
  for (const n of order) (n.input ?? []).forEach((i, k) => { if (index.initializers.has(i)) (blocked(n) || keepsFp32(n, k) ? fp32Readers : fp16Readers).add(i); });
  const half = new Map<string, string>();
  const newInits: onnx.ITensorProto[] = [];
  for (const t of g.initializer ?? []) {
    if (t.dataType !== DT.FLOAT || !fp16Readers.has(t.name!)) {
      newInits.push(t);
      continue;
    }
    const bits = Uint16Array.from(floatValues(t), float32ToFloat16Bits);
    if (fp32Readers.has(t.name!)) {
      const name = index.uniqueName(`${t.name}_fp16`);
      half.set(t.name!, name);
      newInits.push(t, makeTensor(name, DT.FLOAT16, (t.dims ?? []).map(Number), bits));
    } else {
      half.set(t.name!, t.name!);
      newInits.push(makeTensor(t.name!, DT.FLOAT16, (t.dims ?? []).map(Number), bits));
    }
  }
  g.initializer = newInits;

  const out: onnx.INodeProto[] = [];
  const outcomes: NodeOutcome[] = [];
  // fp32 graph inputs: one Cast each, read by every fp16 consumer.
  const inputHalf = new Map<string, string>();
  for (const v of g.input ?? []) {
    if (!isFloat(v.name!) || index.initializers.has(v.name!)) continue;
    const h = index.uniqueName(`${v.name}_fp16`);
    inputHalf.set(v.name!, h);
    out.push(makeNode('Cast', [v.name!], [h], { to: DT.FLOAT16 }, index.uniqueName(`${v.name}_cast_fp16`)));
  }
  const outputNames = new Set((g.output ?? []).map((v) => v.name!));
  // Float values produced in fp16 that a consumer needs in fp32 (blocked nodes, graph outputs) get one Cast back each.
  const fp32Of = new Map<string, string>();
  const castBack = (name: string): string => {
    let f = fp32Of.get(name);
    if (!f) {
      f = index.uniqueName(`${name}_fp32`);
      fp32Of.set(name, f);
      out.push(makeNode('Cast', [name], [f], { to: DT.FLOAT }, index.uniqueName(`${name}_cast_fp32`)));
    }
    return f;
  };
  const renamedOutputs = new Map<string, string>();
  for (const n of order) {
    const name = n.name || n.output![0]!;
    const inputs = (n.input ?? []).map((i) => (i ? (renamedOutputs.get(i) ?? i) : i));
    if (blocked(n)) {
      // Inputs back to fp32 (initializers already are: only fp16 readers got the half copy).
      const ins = inputs.map((i) => (i && isFloat(i) && !index.initializers.has(i) ? (inputHalf.has(i) ? i : castBack(i)) : i));
      const outs = (n.output ?? []).map((x) => (isFloat(x) && !outputNames.has(x) ? index.uniqueName(`${x}_fp32out`) : x));
      out.push({ ...n, input: ins, output: outs });
      (n.output ?? []).forEach((x, i) => {
        if (outs[i] !== x) out.push(makeNode('Cast', [outs[i]!], [x], { to: DT.FLOAT16 }, index.uniqueName(`${x}_cast_fp16`)));
      });
      const reason = o.excludeNodes.has(name) ? 'excluded by name' : o.excludeOps.has(n.opType!) ? 'excluded by op type' : (noFloat16(n) ?? `a constant input exceeds the float16 range (±${FP16_MAX})`);
      outcomes.push({ node: name, op: n.opType!, action: 'kept', reason });
      continue;
    }
    const ins = inputs.map((i, k) => {
      if (!i) return i;
      // Inputs typed float32 by the op's schema stay fp32: the initializer as it was, a computed value cast back.
      if (keepsFp32(n, k)) return index.initializers.has(i) || inputHalf.has(i) || !isFloat(i) ? i : castBack(i);
      return inputHalf.get(i) ?? half.get(i) ?? i;
    });
    // A graph output is produced under a new name in fp16, then cast back to fp32 under its own name.
    const outs = (n.output ?? []).map((x) => {
      if (!outputNames.has(x) || !isFloat(x)) return x;
      const h = index.uniqueName(`${x}_fp16`);
      renamedOutputs.set(x, h);
      return h;
    });
    let attribute = n.attribute ?? [];
    if (n.opType === 'Cast' && isFloat(n.output![0]!)) attribute = attribute.map((a) => (a.name === 'to' ? { ...a, i: DT.FLOAT16 } : a));
    if (n.opType === 'Constant' || n.opType === 'ConstantOfShape') {
      attribute = attribute.map((a) => (a.t && a.t.dataType === DT.FLOAT ? { ...a, t: makeTensor(a.t.name ?? '', DT.FLOAT16, (a.t.dims ?? []).map(Number), Uint16Array.from(floatValues(a.t), float32ToFloat16Bits)) } : a));
    }
    out.push({ ...n, input: ins, output: outs, attribute });
    (n.output ?? []).forEach((x, i) => {
      if (outs[i] !== x) out.push(makeNode('Cast', [outs[i]!], [x], { to: DT.FLOAT }, index.uniqueName(`${x}_cast_fp32`)));
    });
    outcomes.push({ node: name, op: n.opType!, action: 'quantized' });
  }
  g.node = out;
  // Intermediate value types changed; onnxruntime re-infers them.
  g.valueInfo = [];
  return outcomes;
}
