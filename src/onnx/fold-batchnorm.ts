import { onnx } from './proto';
import { floatAttr, GraphIndex, intAttr, nodeKey } from './graph';
import { DT, elementCount, floatValues, makeTensor } from './tensor';

/**
 * Folds each inference-mode BatchNormalization that directly follows a Conv into that Conv's weights and
 * bias: W'[m] = W[m]·γ[m]/√(σ²[m]+ε), b'[m] = (b[m] − μ[m])·γ[m]/√(σ²[m]+ε) + β[m]. onnxruntime does the
 * same at load, so outputs do not change; but folded first, the four per-channel parameter tensors stop
 * being float weights the quantizer cannot touch (paddle2onnx exports keep every BatchNormalization:
 * 15% of PaddleOCR's classifier once its convolutions are int8). A pair folds only when the Conv's output
 * feeds nothing else, is not a graph output, and every parameter is a float initializer. Returns how many folded.
 * `names`: the model's names, when `graph` is one of several (GraphIndex).
 */
export function foldBatchNorms(graph: onnx.IGraphProto, names?: Set<string>): number {
  const index = new GraphIndex(graph, names);
  const drop = new Set<onnx.INodeProto>();
  for (const bn of graph.node ?? []) {
    if (bn.opType !== 'BatchNormalization' || (bn.domain ?? '') !== '' || !foldable(bn, index)) continue;
    const conv = index.producers.get(bn.input![0]!);
    if (!conv || conv.opType !== 'Conv' || (conv.domain ?? '') !== '' || drop.has(conv)) continue;
    const x = conv.output![0]!;
    if ((index.consumers.get(x) ?? []).length !== 1 || index.isGraphOutput(x)) continue;
    const w = index.floatInitializer(conv.input![1]);
    const b = conv.input![2] ? index.floatInitializer(conv.input![2]) : undefined;
    const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) => index.floatInitializer(bn.input![i]));
    if (!w || (conv.input![2] && !b) || !gamma || !beta || !mean || !variance) continue;
    const dims = (w.dims ?? []).map(Number);
    const channels = dims[0]!;
    const per = elementCount(dims.slice(1));
    const [g, be, mu, v] = [gamma, beta, mean, variance].map(floatValues);
    if ([g, be, mu, v].some((t) => t!.length !== channels)) continue;
    const eps = floatAttr(bn, 'epsilon', 1e-5);
    const weights = floatValues(w);
    const bias = b ? floatValues(b) : new Float32Array(channels);
    const folded = new Float32Array(weights.length);
    const foldedBias = new Float32Array(channels);
    for (let m = 0; m < channels; m++) {
      const s = g![m]! / Math.sqrt(v![m]! + eps);
      for (let k = 0; k < per; k++) folded[m * per + k] = weights[m * per + k]! * s;
      foldedBias[m] = (bias[m]! - mu![m]!) * s + be![m]!;
    }
    // A tensor only this pair reads takes the folded values under its own name (the exporter's, e.g.
    // conv2d_0.w_0, which also keeps a small model's file small); one read elsewhere stays as it was and
    // the fold gets a new tensor.
    const wName = store(index, graph, soleReader(index, w.name!, [conv]) ? w.name! : index.uniqueName(`${w.name}.bn_folded`), dims, folded);
    const bOwn = [b?.name, beta.name].find((n): n is string => !!n && soleReader(index, n, [conv, bn]));
    const bName = store(index, graph, bOwn ?? index.uniqueName(`${nodeKey(bn)}.bias_folded`), [channels], foldedBias);
    conv.input = [conv.input![0]!, wName, bName];
    conv.output = [bn.output![0]!];
    drop.add(bn);
  }
  graph.node = (graph.node ?? []).filter((n) => !drop.has(n));
  return drop.size;
}

/** Whether `name` is read by none but `readers` and is no graph input or output (so it can change values). */
function soleReader(index: GraphIndex, name: string, readers: onnx.INodeProto[]): boolean {
  const graphIO = [...(index.graph.input ?? []), ...(index.graph.output ?? [])].some((v) => v.name === name);
  return !graphIO && (index.consumers.get(name) ?? []).every((n) => readers.includes(n));
}

/** Stores `values` as float initializer `name`, replacing one of that name. */
function store(index: GraphIndex, graph: onnx.IGraphProto, name: string, dims: number[], values: Float32Array): string {
  const t = makeTensor(name, DT.FLOAT, dims, values);
  graph.initializer = [...(graph.initializer ?? []).filter((x) => x.name !== name), t];
  index.initializers.set(name, t);
  return name;
}

/** Inference mode, per channel (opset 9's `spatial`), and only its first output read. */
function foldable(bn: onnx.INodeProto, index: GraphIndex): boolean {
  if (intAttr(bn, 'training_mode', 0) !== 0 || intAttr(bn, 'spatial', 1) !== 1) return false;
  return (bn.output ?? []).slice(1).every((o) => !o || ((index.consumers.get(o) ?? []).length === 0 && !index.isGraphOutput(o)));
}
