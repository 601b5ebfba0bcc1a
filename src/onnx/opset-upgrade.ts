import { onnx } from './proto';
import { attr, GraphIndex, intsAttr, nodeKey, subgraphsOf } from './graph';
import { floatTensor, int64Tensor } from './build';

/**
 * Upgrades a model's default-domain opset, so quantizers that need newer operators (DynamicQuantizeLinear
 * 11, per-axis QDQ 13, blocked DequantizeLinear 21) can work on what old exporters write: paddle2onnx and
 * older torch exports import opset 9 or 10. Only the operators whose signature or meaning changed between
 * those versions are rewritten (attributes that became inputs, Softmax's 2-D coercion, Upsample); every
 * other operator must be on the list known to mean the same at every version, else the upgrade refuses by
 * name rather than guess. Other domains are left as they are.
 */

export class OpsetUpgradeError extends Error {
  override name = 'OpsetUpgradeError';
}

/** Operators whose inference meaning is the same from opset 7 to 21 (types widened, defaults kept). */
const UNCHANGED = new Set([
  'Abs', 'Acos', 'Acosh', 'Add', 'And', 'ArgMax', 'ArgMin', 'Asin', 'Asinh', 'Atan', 'Atanh', 'AveragePool', 'BatchNormalization',
  'Cast', 'Ceil', 'Concat', 'Constant', 'ConstantOfShape', 'Conv', 'ConvTranspose', 'Cos', 'Cosh', 'DepthToSpace', 'Div', 'Elu',
  'Equal', 'Erf', 'Exp', 'Expand', 'Flatten', 'Floor', 'Gather', 'Gemm', 'GlobalAveragePool', 'GlobalMaxPool', 'Greater', 'HardSigmoid',
  'Identity', 'InstanceNormalization', 'IsNaN', 'LeakyRelu', 'Less', 'Log', 'LRN', 'MatMul', 'Max', 'MaxPool', 'Mean', 'Min', 'Mul',
  'Neg', 'Not', 'Or', 'Pow', 'PRelu', 'Reciprocal', 'Relu', 'Reshape', 'Selu', 'Shape', 'Sigmoid', 'Sign', 'Sin', 'Sinh', 'Size',
  'Softplus', 'Softsign', 'SpaceToDepth', 'Sqrt', 'Sub', 'Sum', 'Tan', 'Tanh', 'Tile', 'Transpose', 'Where', 'Xor',
  // Recurrent layers: opset 14 added `layout`, whose default is the old layout.
  'LSTM', 'GRU', 'RNN',
  // Newer than 7, the same from their first version to 21 (later versions widened types or added
  // attributes whose defaults keep the old meaning): a model that has them imports that opset already.
  'HardSwish', 'LayerNormalization', 'Gelu', 'Mish', 'Celu', 'Trilu', 'Range', 'Einsum', 'GatherElements', 'GatherND',
  'ScatterND', 'CumSum', 'NonZero', 'Round', 'Mod',
]);

/** Operators holding subgraphs whose meaning is the same from 11 to 21: their bodies are upgraded too. */
const WITH_BODIES = new Set(['If', 'Loop']);

/** Reductions whose `axes` attribute became an input: ReduceSum at 13, the rest at 18. */
const REDUCE_AXES_INPUT: Record<string, number> = {
  ReduceSum: 13, ReduceMean: 18, ReduceMax: 18, ReduceMin: 18, ReduceProd: 18, ReduceL1: 18, ReduceL2: 18,
  ReduceLogSum: 18, ReduceLogSumExp: 18, ReduceSumSquare: 18,
};

export interface OpsetUpgrade {
  from: number;
  to: number;
  /** Nodes rewritten, per operator. */
  rewritten: Record<string, number>;
}

const isDefaultDomain = (d: string | null | undefined): boolean => !d || d === 'ai.onnx';

/** Upgrades `model` in place to default-domain opset `to`; a model already there or newer is left alone. */
export function upgradeOpset(model: onnx.IModelProto, to: number): OpsetUpgrade {
  const imp = (model.opsetImport ?? []).find((o) => isDefaultDomain(o.domain));
  const from = Number(imp?.version ?? 0);
  const rewritten: Record<string, number> = {};
  if (!imp || from >= to) return { from, to: Math.max(from, to), rewritten };
  if (from < 7) throw new OpsetUpgradeError(`the model imports opset ${from}; upgrades start at opset 7 (re-export it)`);
  const g = model.graph!;
  const names = new Set<string>();
  const index = new GraphIndex(g, names);
  const crosses = (at: number): boolean => from < at && to >= at;
  const drop = (n: onnx.INodeProto, ...names: string[]): onnx.IAttributeProto[] => (n.attribute ?? []).filter((a) => !names.includes(a.name!));
  // Attributes become constant inputs, one per value (each `what` has one type): eighteen Clips between 0
  // and 6 share two, named after what they hold.
  const constants = new Map<string, string>();
  const constant = (what: string, values: number[], t: (name: string) => onnx.ITensorProto): string => {
    const key = `${what}:${values.join(',')}`;
    const known = constants.get(key);
    if (known) return known;
    const name = index.uniqueName([what, ...values].join('_'));
    g.initializer = [...(g.initializer ?? []), t(name)];
    constants.set(key, name);
    return name;
  };
  const i64 = (what: string, values: number[]): string => constant(what, values, (name) => int64Tensor(name, [values.length], values));
  const f32 = (what: string, value: number): string => constant(what, [value], (name) => floatTensor(name, [], [value]));
  const str = (n: onnx.INodeProto, name: string): string | undefined => {
    const a = attr(n, name);
    return a?.s ? new TextDecoder().decode(a.s) : undefined;
  };
  const refuse = (n: onnx.INodeProto, why: string): never => {
    throw new OpsetUpgradeError(`cannot upgrade ${n.opType} node ${JSON.stringify(n.name || n.output?.[0])} from opset ${from} to ${to}: ${why}`);
  };

  // Each graph with an index of its own (who reads a Dropout's mask), names unique across the model.
  const upgradeGraph = (graph: onnx.IGraphProto): void => {
    const local = graph === g ? index : new GraphIndex(graph, names);
    const out: onnx.INodeProto[] = [];
    for (const n of graph.node ?? []) {
      if (!isDefaultDomain(n.domain)) {
        out.push(n);
        continue;
      }
      const op = n.opType!;
      const before = out.length;
      if (op === 'Clip' && crosses(11)) {
        const lo = attr(n, 'min');
        const hi = attr(n, 'max');
        out.push({ ...n, input: [n.input![0]!, lo ? f32('min', Number(lo.f)) : '', hi ? f32('max', Number(hi.f)) : ''], attribute: drop(n, 'min', 'max') });
      } else if (op === 'Slice' && crosses(10)) {
        const starts = intsAttr(n, 'starts') ?? refuse(n, 'no starts');
        const ends = intsAttr(n, 'ends') ?? refuse(n, 'no ends');
        const axes = intsAttr(n, 'axes');
        out.push({ ...n, input: [n.input![0]!, i64('starts', starts), i64('ends', ends), ...(axes ? [i64('axes', axes)] : [])], attribute: drop(n, 'starts', 'ends', 'axes') });
      } else if ((op === 'Squeeze' || op === 'Unsqueeze') && crosses(13)) {
        const axes = intsAttr(n, 'axes');
        if (!axes && op === 'Unsqueeze') refuse(n, 'no axes');
        out.push({ ...n, input: [n.input![0]!, ...(axes ? [i64('axes', axes)] : [])], attribute: drop(n, 'axes') });
      } else if (op in REDUCE_AXES_INPUT && crosses(REDUCE_AXES_INPUT[op]!)) {
        const axes = intsAttr(n, 'axes');
        out.push({ ...n, input: [n.input![0]!, ...(axes ? [i64('axes', axes)] : [])], attribute: drop(n, 'axes') });
      } else if (op === 'Split' && crosses(13)) {
        const split = intsAttr(n, 'split');
        // From 18 a Split without sizes must say how many outputs; the node's outputs say it.
        const count = !split && to >= 18 ? [{ name: 'num_outputs', type: onnx.AttributeProto.AttributeType.INT, i: n.output!.length }] : [];
        out.push({ ...n, input: [n.input![0]!, ...(split ? [i64('split', split)] : [])], attribute: [...drop(n, 'split'), ...count] });
      } else if (op === 'Pad' && crosses(11)) {
        const pads = intsAttr(n, 'pads') ?? refuse(n, 'no pads');
        const value = attr(n, 'value');
        out.push({ ...n, input: [n.input![0]!, i64('pads', pads), ...(value ? [f32('value', Number(value.f))] : [])], attribute: drop(n, 'pads', 'value') });
      } else if (op === 'TopK' && crosses(10)) {
        const k = attr(n, 'k') ?? refuse(n, 'no k');
        out.push({ ...n, input: [n.input![0]!, i64('k', [Number(k.i)])], attribute: drop(n, 'k') });
      } else if (['Softmax', 'LogSoftmax', 'Hardmax'].includes(op) && crosses(13)) {
        // Before 13 the input is coerced to 2-D at `axis` (default 1) and normalised over the second
        // dimension; from 13 over one axis. Flatten at the old axis, normalise the last, reshape back.
        const axis = attr(n, 'axis')?.i === undefined ? 1 : Number(attr(n, 'axis')!.i);
        if (axis === -1) {
          out.push(n);
        } else {
          const x = n.input![0]!;
          const base = nodeKey(n);
          const flat = index.uniqueName(`${base}_2d`);
          const norm = index.uniqueName(`${base}_norm`);
          const shape = index.uniqueName(`${base}_shape`);
          out.push(
            { name: index.uniqueName(`${base}_flatten`), opType: 'Flatten', input: [x], output: [flat], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: axis }] },
            { ...n, input: [flat], output: [norm], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: -1 }] },
            { name: index.uniqueName(`${base}_shape_of`), opType: 'Shape', input: [x], output: [shape], attribute: [] },
            { name: index.uniqueName(`${base}_reshape`), opType: 'Reshape', input: [norm, shape], output: [n.output![0]!], attribute: [] },
          );
        }
      } else if ((op === 'Upsample' || (op === 'Resize' && from < 11)) && to >= 11) {
        // Upsample (removed at 10) and Resize-10 scale as `asymmetric` with `floor` for nearest.
        if (op === 'Upsample' && from < 9) refuse(n, 'Upsample before opset 9 keeps its scales in an attribute');
        const mode = str(n, 'mode') ?? 'nearest';
        const S = onnx.AttributeProto.AttributeType.STRING;
        const s = (name: string, v: string): onnx.IAttributeProto => ({ name, type: S, s: new TextEncoder().encode(v) });
        out.push({
          // Resize-11 and -12 need a roi input even where the mode ignores it: an empty one.
          ...n, opType: 'Resize', input: [n.input![0]!, to < 13 ? constant('roi', [], (name) => floatTensor(name, [0], [])) : '', n.input![1]!],
          attribute: [s('mode', mode === 'bilinear' ? 'linear' : mode), s('coordinate_transformation_mode', 'asymmetric'), ...(mode === 'nearest' ? [s('nearest_mode', 'floor')] : [])],
        });
      } else if (op === 'Resize') {
        if (to >= 13 && str(n, 'coordinate_transformation_mode') === 'tf_half_pixel_for_nn') refuse(n, 'coordinate_transformation_mode tf_half_pixel_for_nn was removed at opset 13');
        out.push(n);
      } else if (op === 'Dropout') {
        // Inference: the identity. Its mask output has no counterpart.
        if ((n.output ?? []).length > 1 && n.output![1] && local.consumers.has(n.output![1])) refuse(n, 'its mask output is used');
        out.push({ ...n, opType: 'Identity', input: [n.input![0]!], output: [n.output![0]!], attribute: [] });
      } else if (op === 'BatchNormalization' && (n.output ?? []).filter(Boolean).length > 1) {
        refuse(n, 'training outputs (mean, var) changed meaning at opset 14');
      } else if (WITH_BODIES.has(op) && from >= 11) {
        for (const sub of subgraphsOf(n)) upgradeGraph(sub);
        out.push(n);
        continue;
      } else if (UNCHANGED.has(op) || op in REDUCE_AXES_INPUT || ['Clip', 'Slice', 'Squeeze', 'Unsqueeze', 'Split', 'Pad', 'TopK', 'Softmax', 'LogSoftmax', 'Hardmax', 'Upsample'].includes(op)) {
        out.push(n);
        continue;
      } else {
        refuse(n, 'not in the upgrader\'s table of operators (src/onnx/opset-upgrade.ts)');
      }
      if (out.length !== before + 1 || out[out.length - 1] !== n) rewritten[op] = (rewritten[op] ?? 0) + 1;
    }
    graph.node = out;
  };
  upgradeGraph(g);
  imp.version = to;
  // Each opset came with an IR version; runtimes check the model's is recent enough for what it imports.
  const ir = to >= 21 ? 10 : to >= 19 ? 9 : to >= 15 ? 8 : to >= 13 ? 7 : to >= 11 ? 6 : 5;
  if (Number(model.irVersion ?? 0) < ir) model.irVersion = ir;
  return { from, to, rewritten };
}
