import { onnx } from './proto';
import { attr, nodeKey } from './graph';

/**
 * `model` with each main-graph If that `taken` decides replaced by the branch it takes: the branch's nodes
 * and initializers in the main graph under their own names, an Identity from each branch output to the
 * If's. Applied again to what that brings up (nested Ifs), until nothing in `taken` is left to inline. An
 * If whose branch would reuse a name the main graph already has stays as it is.
 */
export function inlineBranches(model: onnx.IModelProto, taken: ReadonlyMap<string, boolean>): onnx.ModelProto {
  const copy = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const g = copy.graph!;
  const names = (graph: onnx.IGraphProto): string[] => [...(graph.initializer ?? []).map((t) => t.name!), ...(graph.node ?? []).flatMap((n) => n.output ?? [])];
  for (let changed = true; changed;) {
    changed = false;
    const nodes: onnx.INodeProto[] = [];
    const initializers: onnx.ITensorProto[] = [];
    const used = new Set([...names(g), ...(g.input ?? []).map((v) => v.name!)]);
    for (const n of g.node ?? []) {
      const branch = n.opType === 'If' && !n.domain && taken.has(nodeKey(n)) ? attr(n, taken.get(nodeKey(n)) ? 'then_branch' : 'else_branch')?.g : undefined;
      const own = branch ? names(branch) : [];
      if (!branch || own.some((x) => used.has(x))) {
        nodes.push(n);
        continue;
      }
      for (const x of own) used.add(x);
      nodes.push(...(branch.node ?? []), ...(branch.output ?? []).map((o, i) => ({ opType: 'Identity', name: `${nodeKey(n)}.taken.${i}`, input: [o.name!], output: [n.output![i]!] })));
      initializers.push(...(branch.initializer ?? []));
      changed = true;
    }
    g.node = nodes;
    g.initializer = [...(g.initializer ?? []), ...initializers];
  }
  return copy;
}
