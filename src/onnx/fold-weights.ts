import { onnx } from './proto';
import { implicitInputs, intAttr, intsAttr, topologicalSort } from './graph';
import { DT, elementCount, floatValues, makeTensor, tensorBytes, transpose } from './tensor';

/**
 * Folds the cheap operators exporters put between a weight and the node that uses it — Identity, Transpose,
 * Reshape, Squeeze, Unsqueeze, Cast to float, Slice, Concat — into initializers, so quantizers see the weight
 * itself (torch writes `MatMul(x, Transpose(W))` when constant folding is off, and an LSTM's weights as
 * Slices of its gates put back in ONNX's order by a Concat; others Cast float16 weights up, or Reshape a
 * Conv kernel). Only paths that end in one of `weights` (the inputs a quantizer will replace)
 * fold, so nothing else grows: a float16 weight cast up is quantized next, never stored as float32. A node
 * folds when its data input is a float initializer and its other inputs are int64 initializers; a graph
 * output, or a value a subgraph reads, never folds away. In a subgraph, `outer` are the initializers of the
 * graphs around it: a fold of one is the subgraph's own (silero-vad's LSTM reads its weights through an
 * Unsqueeze in each branch of an If, so each branch gets its weights and quantizes them). Returns how many
 * nodes were folded.
 */
export function foldWeightPaths(graph: onnx.IGraphProto, weights: Set<string>, outer: onnx.ITensorProto[] = []): number {
  const inits = new Map([...outer, ...(graph.initializer ?? [])].map((t) => [t.name!, t]));
  const outputs = new Set([...(graph.output ?? []).map((o) => o.name!), ...(graph.node ?? []).flatMap(implicitInputs)]);
  const order = topologicalSort(graph);
  // Backwards from the weights: the nodes whose output is (a step towards) one of them.
  const wanted = new Set(weights);
  const onPath = new Set<onnx.INodeProto>();
  for (const n of [...order].reverse()) {
    if (!FOLDABLE.has(n.opType!) || (n.domain ?? '') !== '' || (n.output ?? []).length !== 1 || !wanted.has(n.output![0]!) || outputs.has(n.output![0]!)) continue;
    onPath.add(n);
    for (const i of n.opType === 'Concat' ? n.input ?? [] : [n.input![0]!]) wanted.add(i);
  }
  // Exporters alias one weight across layers (Identity) and repeat the same Transpose on each alias: the
  // same fold of the same source is made once, and every reader is pointed at it.
  const alias = new Map<string, string>();
  const resolve = (name: string): string => alias.get(name) ?? name;
  const made = new Map<string, string>();
  const kept: onnx.INodeProto[] = [];
  let folded = 0;
  for (const raw of order) {
    const n = { ...raw, input: (raw.input ?? []).map((i) => (i ? resolve(i) : i)) };
    if (onPath.has(raw) && n.opType === 'Identity' && inits.has(n.input[0]!)) {
      alias.set(n.output![0]!, n.input[0]!);
      folded++;
      continue;
    }
    const key = `${n.opType}|${n.input.join(',')}|${JSON.stringify(n.attribute ?? [])}`;
    const same = onPath.has(raw) ? made.get(key) : undefined;
    if (same) {
      alias.set(n.output![0]!, same);
      folded++;
      continue;
    }
    const t = onPath.has(raw) ? fold(n, inits) : undefined;
    if (!t) {
      kept.push(n);
      continue;
    }
    made.set(key, t.name!);
    inits.set(t.name!, t);
    graph.initializer = [...(graph.initializer ?? []), t];
    folded++;
  }
  graph.node = kept;
  // Graph outputs are never on a path (see above), so every alias is read by nodes only.
  return folded;
}

const FOLDABLE = new Set(['Identity', 'Cast', 'Reshape', 'Squeeze', 'Unsqueeze', 'Transpose', 'Slice', 'Concat']);
const FLOAT_TYPES = new Set<number>([DT.FLOAT, DT.FLOAT16, DT.DOUBLE]);

function int64s(t: onnx.ITensorProto | undefined): number[] | undefined {
  if (!t || t.dataType !== DT.INT64) return undefined;
  const b = tensorBytes(t);
  return Array.from(new BigInt64Array(new Uint8Array(b).buffer), Number);
}

/** The folded output of `n`, or undefined when it does not fold. */
function fold(n: onnx.INodeProto, inits: Map<string, onnx.ITensorProto>): onnx.ITensorProto | undefined {
  const x = inits.get(n.input?.[0] ?? '');
  if (!x || !FLOAT_TYPES.has(x.dataType ?? 0)) return undefined;
  if (n.opType === 'Concat') return concat(n, inits);
  const params = (n.input ?? []).slice(1).filter(Boolean);
  if (params.some((p) => !inits.has(p))) return undefined;
  const dims = (x.dims ?? []).map(Number);
  const out = n.output![0]!;
  const asFloat = (d: number[]): onnx.ITensorProto | undefined => (x.dataType === DT.FLOAT ? { ...x, name: out, dims: d } : undefined);
  const axesOf = (): number[] | undefined => intsAttr(n, 'axes') ?? int64s(inits.get(n.input?.[1] ?? ''));
  switch (n.opType) {
    case 'Identity':
      return { ...x, name: out };
    case 'Cast':
      return intAttr(n, 'to', 0) === DT.FLOAT ? makeTensor(out, DT.FLOAT, dims, floatValues(x)) : undefined;
    case 'Reshape': {
      const shape = int64s(inits.get(n.input?.[1] ?? ''));
      if (!shape || intAttr(n, 'allowzero', 0) !== 0) return undefined;
      const total = elementCount(dims);
      const d = shape.map((s, i) => (s === 0 ? dims[i]! : s));
      const known = d.filter((s) => s !== -1).reduce((a, b) => a * b, 1);
      return asFloat(d.map((s) => (s === -1 ? total / known : s)));
    }
    case 'Squeeze': {
      const axes = (axesOf() ?? dims.flatMap((s, i) => (s === 1 ? [i] : []))).map((a) => (a < 0 ? a + dims.length : a));
      return asFloat(dims.filter((_, i) => !axes.includes(i)));
    }
    case 'Unsqueeze': {
      const axes = axesOf();
      if (!axes) return undefined;
      const rank = dims.length + axes.length;
      const norm = axes.map((a) => (a < 0 ? a + rank : a));
      const d: number[] = [];
      let k = 0;
      for (let i = 0; i < rank; i++) d.push(norm.includes(i) ? 1 : dims[k++]!);
      return asFloat(d);
    }
    case 'Transpose': {
      if (x.dataType !== DT.FLOAT) return undefined;
      const perm = intsAttr(n, 'perm') ?? dims.map((_, i) => dims.length - 1 - i);
      return makeTensor(out, DT.FLOAT, perm.map((p) => dims[p]!), transpose(floatValues(x), dims, perm));
    }
    case 'Slice': {
      if (x.dataType !== DT.FLOAT) return undefined;
      // Before opset 10 the bounds are attributes; from 10, inputs (axes and steps optional).
      const starts = intsAttr(n, 'starts') ?? int64s(inits.get(n.input?.[1] ?? ''));
      const ends = intsAttr(n, 'ends') ?? int64s(inits.get(n.input?.[2] ?? ''));
      if (!starts || !ends) return undefined;
      const axes = intsAttr(n, 'axes') ?? (n.input?.[3] ? int64s(inits.get(n.input[3])) : starts.map((_, i) => i));
      const steps = n.input?.[4] ? int64s(inits.get(n.input[4])) : starts.map(() => 1);
      if (!axes || !steps || steps.some((v) => v === 0)) return undefined;
      const { values, dims: d } = sliceValues(floatValues(x), dims, starts, ends, axes, steps);
      return makeTensor(out, DT.FLOAT, d, values);
    }
    default:
      return undefined;
  }
}

/** ONNX Slice of `x` [dims] (negative and out-of-range bounds clamped as the operator does). */
export function sliceValues(x: Float32Array, dims: number[], starts: number[], ends: number[], axes: number[], steps: number[]): { values: Float32Array; dims: number[] } {
  const picks = dims.map((d) => Array.from({ length: d }, (_, i) => i));
  axes.forEach((raw, k) => {
    const a = raw < 0 ? raw + dims.length : raw;
    const d = dims[a]!;
    const step = steps[k]!;
    const bound = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v < 0 ? v + d : v));
    const [from, to] = step > 0 ? [bound(starts[k]!, 0, d), bound(ends[k]!, 0, d)] : [bound(starts[k]!, 0, d - 1), bound(ends[k]!, -1, d - 1)];
    const list: number[] = [];
    for (let i = from; step > 0 ? i < to : i > to; i += step) list.push(i);
    picks[a] = list;
  });
  const outDims = picks.map((p) => p.length);
  const strides = dims.map((_, i) => elementCount(dims.slice(i + 1)));
  const values = new Float32Array(elementCount(outDims));
  const at = outDims.map(() => 0);
  for (let o = 0; o < values.length; o++) {
    let src = 0;
    for (let i = 0; i < at.length; i++) src += picks[i]![at[i]!]! * strides[i]!;
    values[o] = x[src]!;
    for (let i = at.length - 1; i >= 0 && ++at[i]! === outDims[i]!; i--) at[i] = 0;
  }
  return { values, dims: outDims };
}

/** A Concat of float32 initializers, or undefined when an input is anything else. */
function concat(n: onnx.INodeProto, inits: Map<string, onnx.ITensorProto>): onnx.ITensorProto | undefined {
  const parts = (n.input ?? []).map((i) => inits.get(i));
  if (parts.some((t) => !t || t.dataType !== DT.FLOAT)) return undefined;
  const dims = parts.map((t) => (t!.dims ?? []).map(Number));
  const rank = dims[0]!.length;
  const axis = intAttr(n, 'axis', 0) < 0 ? intAttr(n, 'axis', 0) + rank : intAttr(n, 'axis', 0);
  if (dims.some((d) => d.length !== rank || d.some((v, i) => i !== axis && v !== dims[0]![i]))) return undefined;
  const outer = elementCount(dims[0]!.slice(0, axis));
  const chunks = dims.map((d) => elementCount(d.slice(axis)));
  const values = parts.map((t) => floatValues(t!));
  const out = new Float32Array(outer * chunks.reduce((a, b) => a + b, 0));
  let o = 0;
  for (let i = 0; i < outer; i++) {
    values.forEach((v, p) => {
      out.set(v.subarray(i * chunks[p]!, (i + 1) * chunks[p]!), o);
      o += chunks[p]!;
    });
  }
  return makeTensor(n.output![0]!, DT.FLOAT, dims[0]!.map((v, i) => (i === axis ? dims.reduce((s, d) => s + d[axis]!, 0) : v)), out);
}

/**
 * Stores once an int8 matrix that is also stored transposed: a table tied to an LM head, quantized row by
 * row for its lookups and column by column for the head's integer product, holds the same values twice.
 * The transposed copy becomes a Transpose of the other, which onnxruntime folds at load. Returns how many
 * copies went.
 */
export function dedupeTransposedInt8(graph: onnx.IGraphProto): number {
  const matrices = (graph.initializer ?? []).filter((t) => t.dataType === DT.INT8 && (t.dims ?? []).length === 2);
  const byContent = new Map<string, onnx.ITensorProto>();
  for (const t of matrices) byContent.set(`${(t.dims ?? []).map(Number).join('x')}:${Buffer.from(tensorBytes(t)).toString('base64')}`, t);
  const replaced = new Map<string, string>();
  for (const t of matrices) {
    const [r, c] = (t.dims ?? []).map(Number) as [number, number];
    if (r === c || replaced.has(t.name!)) continue;
    const flipped = transpose(new Int8Array(new Uint8Array(tensorBytes(t)).buffer), [r, c], [1, 0]);
    const other = byContent.get(`${c}x${r}:${Buffer.from(flipped.buffer).toString('base64')}`);
    if (other && other !== t && !replaced.has(other.name!)) replaced.set(t.name!, other.name!);
  }
  if (replaced.size === 0) return 0;
  graph.initializer = (graph.initializer ?? []).filter((t) => !replaced.has(t.name!));
  graph.node = [
    ...[...replaced].map(([copy, source]) => ({ name: `${copy}_Transpose`, opType: 'Transpose', input: [source], output: [copy], attribute: [{ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: [1, 0] }] })),
    ...(graph.node ?? []),
  ];
  return replaced.size;
}
