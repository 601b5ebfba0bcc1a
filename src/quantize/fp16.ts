import { onnx } from '../onnx/proto';
import { node as makeNode } from '../onnx/build';
import { allGraphs, GraphIndex, implicitInputs, namesIn, nodeKey, outerReferences, subgraphsOf, topologicalSort } from '../onnx/graph';
import { valueTypes, type ValueTypes } from '../onnx/value-types';
import { DT, float32ArrayToFloat16Bits, floatValues, makeTensor } from '../onnx/tensor';
import type { NodeOutcome } from './types';

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
 * A node holding subgraphs (If, Loop, Scan) keeps an fp32 interface: what it reads, explicitly or from its
 * bodies, reaches it in fp32, and each body is converted as a graph of its own, its reads of the graphs
 * around it cast at its entry like graph inputs. (Typed through one graph only, values a branch read from
 * around it reached it as float16: silero-vad's op15 export came out unloadable.)
 */
export function convertToFloat16(g: onnx.IGraphProto, o: { excludeNodes: Set<string>; excludeOps: Set<string> }, outer?: { names: Set<string>; types: ValueTypes }): NodeOutcome[] {
  // One set of names for the whole model, so a name made in one graph is new in all.
  const names = outer?.names ?? new Set(allGraphs(g).flatMap(namesIn));
  const index = new GraphIndex(g, names);
  const types = valueTypes(g, outer?.types ?? new Map());
  const order = topologicalSort(g);
  // Float values this graph reads from the graphs around it (fp32 there): cast once at entry, as inputs are.
  const fromOutside = outer ? [...outerReferences(g)].filter((x) => outer.types.get(x) === DT.FLOAT) : [];
  const isFloat = (name: string): boolean => types.get(name) === DT.FLOAT;
  // A node whose constant inputs do not fit float16 (BatchNorm running variances often exceed 65504) would
  // compute with infinities: it stays fp32 on its own, and the report says why.
  const FP16_MAX = 65504;
  // Each initializer is scanned once, however many nodes read it.
  const tooLarge = new Set((g.initializer ?? []).filter((t) => t.dataType === DT.FLOAT && floatValues(t).some((v) => Math.abs(v) > FP16_MAX)).map((t) => t.name!));
  const outOfRange = new Set(order.filter((n) => (n.input ?? []).some((i) => tooLarge.has(i))));
  const holds = (n: onnx.INodeProto): boolean => subgraphsOf(n).length > 0;
  const blocked = (n: onnx.INodeProto): boolean => o.excludeNodes.has(nodeKey(n)) || o.excludeOps.has(n.opType!) || outOfRange.has(n) || noFloat16(n) !== undefined || holds(n);

  // Which initializers fp32 (blocked) nodes read, and which fp16 ones do: one read by both is kept in both forms.
  const fp32Readers = new Set<string>();
  const fp16Readers = new Set<string>();
  for (const n of order) {
    (n.input ?? []).forEach((i, k) => { if (index.initializers.has(i)) (blocked(n) || keepsFp32(n, k) ? fp32Readers : fp16Readers).add(i); });
    // A weight a body reads is halved here too and cast back for it: kept in fp32, it was stored twice (silero-vad ×0.55 → ×0.76).
    for (const i of implicitInputs(n)) if (index.initializers.has(i)) fp16Readers.add(i);
  }
  const half = new Map<string, string>();
  const newInits: onnx.ITensorProto[] = [];
  for (const t of g.initializer ?? []) {
    if (t.dataType !== DT.FLOAT || !fp16Readers.has(t.name!)) {
      newInits.push(t);
      continue;
    }
    const bits = float32ArrayToFloat16Bits(floatValues(t));
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
  for (const name of [...(g.input ?? []).map((v) => v.name!), ...fromOutside]) {
    if (!isFloat(name) || index.initializers.has(name)) continue;
    const h = index.uniqueName(`${name}_fp16`);
    inputHalf.set(name, h);
    out.push(makeNode('Cast', [name], [h], { to: DT.FLOAT16 }, index.uniqueName(`${name}_cast_fp16`)));
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
  // A value as an fp32 node or body reads it: inputs are fp32 under their own names, and so is a graph
  // output made in fp16 (its Cast back); an initializer only fp16 nodes (or bodies) read was halved under
  // its own name, and a value computed in fp16 is read as its Cast back.
  const fp32 = (i: string): string => {
    if (!i || !isFloat(i) || inputHalf.has(i) || renamedOutputs.has(i)) return i;
    return index.initializers.has(i) && fp32Readers.has(i) ? i : castBack(i);
  };
  for (const n of order) {
    const name = nodeKey(n);
    const inputs = (n.input ?? []).map((i) => (i ? (renamedOutputs.get(i) ?? i) : i));
    if (blocked(n)) {
      const ins = (n.input ?? []).map(fp32);
      const bodies = subgraphsOf(n);
      if (bodies.length) {
        // What the bodies read from here, in fp32: a value computed in fp16 is read as its Cast back.
        for (const i of implicitInputs(n)) {
          const f = fp32(i);
          if (f !== i) for (const b of bodies) renameReads(b, i, f);
        }
        const inner: ValueTypes = new Map(types);
        for (const [x, f] of fp32Of) inner.set(f, types.get(x));
        for (const b of bodies) outcomes.push(...convertToFloat16(b, o, { names, types: inner }));
      }
      const outs = (n.output ?? []).map((x) => (isFloat(x) && !outputNames.has(x) ? index.uniqueName(`${x}_fp32out`) : x));
      out.push({ ...n, input: ins, output: outs });
      (n.output ?? []).forEach((x, i) => {
        if (outs[i] !== x) out.push(makeNode('Cast', [outs[i]!], [x], { to: DT.FLOAT16 }, index.uniqueName(`${x}_cast_fp16`)));
      });
      const reason = o.excludeNodes.has(name) ? 'excluded by name' : o.excludeOps.has(n.opType!) ? 'excluded by op type' : bodies.length ? 'holds subgraphs: converted inside them, fp32 at their edges' : (noFloat16(n) ?? `a constant input exceeds the float16 range (±${FP16_MAX})`);
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
      attribute = attribute.map((a) => (a.t && a.t.dataType === DT.FLOAT ? { ...a, t: makeTensor(a.t.name ?? '', DT.FLOAT16, (a.t.dims ?? []).map(Number), float32ArrayToFloat16Bits(floatValues(a.t))) } : a));
    }
    // A float-to-float Cast (torch writes them in attention's scale) is float16 to float16 now: an
    // Identity. Left a Cast, onnxruntime's CPU cast insertion mistyped it before a Sqrt it has no float16
    // kernel for, with graph optimizations off (as the CLI's load check runs): the torch text transformer.
    const noOp = n.opType === 'Cast' && isFloat(n.input?.[0] ?? '') && isFloat(n.output![0]!);
    out.push(noOp ? { ...n, opType: 'Identity', input: ins, output: outs, attribute: [] } : { ...n, input: ins, output: outs, attribute });
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

/** `g` and the graphs nested in it read `to` wherever they read `from`, a value of a graph around them. */
function renameReads(g: onnx.IGraphProto, from: string, to: string): void {
  for (const x of allGraphs(g)) {
    for (const n of x.node ?? []) n.input = (n.input ?? []).map((i) => (i === from ? to : i));
    for (const v of x.output ?? []) if (v.name === from) v.name = to;
  }
}
