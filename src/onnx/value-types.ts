/**
 * Element types propagated through a graph from its inputs and initializers, op by op (fp16 casts only float
 * values, int8-static calibrates only float ones): never shapes or indices.
 */
import { onnx } from './proto';
import { subgraphsOf, topologicalSort } from './graph';
import { DT } from './tensor';

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

/** Element types (onnx.TensorProto.DataType) of a graph's values by name; undefined where not known. */
export type ValueTypes = Map<string, number | undefined>;

/** Element types of `g`'s values, `outer` holding those of the graphs around it; a node holding subgraphs types its outputs from theirs. */
export function valueTypes(g: onnx.IGraphProto, outer: ValueTypes = new Map()): ValueTypes {
  const types: ValueTypes = new Map(outer);
  for (const v of g.input ?? []) types.set(v.name!, v.type?.tensorType?.elemType ?? undefined);
  for (const t of g.initializer ?? []) types.set(t.name!, t.dataType ?? undefined);
  for (const n of topologicalSort(g)) {
    const outs = subgraphsOf(n).length ? holderOutputTypes(n, types) : outputTypes(n, (i) => types.get(n.input?.[i] ?? ''));
    (n.output ?? []).forEach((name, i) => types.set(name, outs[i]));
  }
  return types;
}

/** If: its then-branch's outputs; Loop: its body's outputs after the condition; Scan: its body's outputs. */
function holderOutputTypes(n: onnx.INodeProto, types: ValueTypes): Array<number | undefined> {
  const body = subgraphsOf(n)[0]!;
  // A Loop body's carried inputs take the types of the Loop's initial values.
  const outer: ValueTypes = new Map(types);
  if (n.opType === 'Loop') (body.input ?? []).slice(2).forEach((v, i) => outer.set(v.name!, v.type?.tensorType?.elemType ?? types.get(n.input?.[i + 2] ?? '')));
  const inner = valueTypes(body, outer);
  const outs = (body.output ?? []).map((v) => inner.get(v.name!) ?? v.type?.tensorType?.elemType ?? undefined);
  return n.opType === 'Loop' ? outs.slice(1) : outs;
}

