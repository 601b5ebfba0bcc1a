/**
 * What GPTQ's Hessians are made of, computed by onnxruntime beside the model. A Conv's patches outnumber
 * its inputs many times (a detector: 25,600 patches of 27 to 864 values an image), so H = Xᵀ·X and each
 * patch's Σx² and Σx⁴ are computed in the graph, per sample (summed in JavaScript, Σ x·xᵀ over a detector's
 * patches took three quarters of its calibration, 14 of 19 s). A MatMul's rows are few (a sequence's
 * tokens, one vector), often far fewer than its width: those rows themselves are the output, and the
 * calibration multiplies many samples' rows at once (gramModel; fetching a 3,072-wide layer's H for each
 * 32-token sample moved 38 MB a sample). Pure graph building: the calibration runs it (calibrate.ts).
 */
import { onnx } from '../onnx/proto';
import { floatTensor, int64Tensor, model, node, valueInfo } from '../onnx/build';
import type { ConvGeometry } from './gptq';

/** A weighted node whose input GPTQ needs: a MatMul's rows of width `k`, or a Conv's patches. */
export interface HessianTarget {
  node: string;
  input: string;
  k: number;
  conv?: ConvGeometry;
}

/** What one target adds: a Conv's H [k, k] and per patch Σx² and Σx⁴ ([patches, 1] each); a MatMul's rows [rows, k]. */
export type HessianOutputs = { kind: 'gram'; k: number; h: string; rowSquares: string; rowFourths: string } | { kind: 'rows'; k: number; rows: string };

/** The names a session fetches for `o`. */
export function fetchesOf(o: HessianOutputs): string[] {
  return o.kind === 'gram' ? [o.h, o.rowSquares, o.rowFourths] : [o.rows];
}

/**
 * A copy of `model` that also outputs, for each target, its rows or (a Conv) its Hessian and patch moments.
 * A Conv's patches come from a grouped convolution whose one-hot filters copy each kernel position of each
 * channel to a channel of its own ([C·kh·kw, 1, kh, kw], group C; 1-D and 3-D alike): its output channel
 * c·kh·kw + i·kw + j is the flattened weight's column, so H's order is the weight's. Only operators opset 7 already has.
 */
export function withHessianOutputs(model: onnx.IModelProto, targets: HessianTarget[]): { model: onnx.IModelProto; outputs: Map<string, HessianOutputs> } {
  const augmented = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const g = augmented.graph!;
  const nodes: onnx.INodeProto[] = [];
  const initializers: onnx.ITensorProto[] = [];
  const outputs = new Map<string, HessianOutputs>();
  // Targets reading the same rows (a transformer's q, k and v projections) share one computation.
  const byRows = new Map<string, HessianOutputs>();
  targets.forEach((t, n) => {
    const rows = JSON.stringify([t.input, t.k, t.conv ?? null]);
    const known = byRows.get(rows);
    if (known) {
      outputs.set(t.node, known);
      return;
    }
    const p = `qcflow.hessian.${n}`;
    initializers.push(int64Tensor(`${p}.shape`, [2], [-1, t.k]));
    if (!t.conv) {
      const out: HessianOutputs = { kind: 'rows', k: t.k, rows: `${p}.x` };
      nodes.push(node('Reshape', [t.input, `${p}.shape`], [out.rows]));
      outputs.set(t.node, out);
      byRows.set(rows, out);
      return;
    }
    const ones = `${p}.ones`;
    initializers.push(floatTensor(ones, [t.k, 1], new Array<number>(t.k).fill(1)));
    const { kernel } = t.conv;
    const size = kernel.reduce((a, b) => a * b, 1);
    const channels = t.k / size;
    const copy = new Float32Array(t.k * size);
    for (let o = 0; o < t.k; o++) copy[o * size + (o % size)] = 1;
    initializers.push(floatTensor(`${p}.unfold`, [t.k, 1, ...kernel], copy));
    const out: HessianOutputs = { kind: 'gram', k: t.k, h: `${p}.h`, rowSquares: `${p}.row_squares`, rowFourths: `${p}.row_fourths` };
    nodes.push(
      node('Conv', [t.input, `${p}.unfold`], [`${p}.patches`], { group: channels, kernel_shape: kernel, strides: t.conv.strides, pads: t.conv.pads, dilations: t.conv.dilations }),
      node('Transpose', [`${p}.patches`], [`${p}.channels_last`], { perm: [0, ...kernel.map((_, i) => i + 2), 1] }),
      node('Reshape', [`${p}.channels_last`, `${p}.shape`], [`${p}.x`]),
      node('Transpose', [`${p}.x`], [`${p}.xt`], { perm: [1, 0] }),
      node('MatMul', [`${p}.xt`, `${p}.x`], [out.h]),
      node('Mul', [`${p}.x`, `${p}.x`], [`${p}.x2`]),
      node('MatMul', [`${p}.x2`, ones], [out.rowSquares]),
      node('Mul', [`${p}.x2`, `${p}.x2`], [`${p}.x4`]),
      node('MatMul', [`${p}.x4`, ones], [out.rowFourths]),
    );
    outputs.set(t.node, out);
    byRows.set(rows, out);
  });
  g.node = [...(g.node ?? []), ...nodes];
  g.initializer = [...(g.initializer ?? []), ...initializers];
  return { model: augmented, outputs };
}

/** Xᵀ·X of float32 rows x [n, k]: how the calibration turns a MatMul's gathered rows into H. */
export function gramModel(): onnx.IModelProto {
  const f32 = onnx.TensorProto.DataType.FLOAT;
  return model({
    name: 'gram', opset: 13, inputs: [valueInfo('x', f32, ['n', 'k'])], outputs: [valueInfo('h', f32, ['k', 'k'])], initializers: [],
    nodes: [node('Transpose', ['x'], ['xt'], { perm: [1, 0] }), node('MatMul', ['xt', 'x'], ['h'])],
  });
}
