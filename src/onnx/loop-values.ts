/**
 * Values computed inside Loop and Scan bodies, made fetchable: a body's value cannot be a graph output, but
 * every extra body output past the carried ones is a scan output, which the node stacks over its
 * iterations. So a copy of the model where each wanted value is also a scan output of its node (and, for a
 * nested body, of every node around it) yields all its iterations' values in one run — what calibration
 * needs to reach an RNN written as a Loop (a scripted torch module) or a Scan.
 */
import { onnx } from './proto';
import { allGraphs, attr, GraphIndex, subgraphsOf } from './graph';
import { node } from './build';

const LOOPS = new Set(['Loop', 'Scan']);

const isLoop = (n: onnx.INodeProto): boolean => LOOPS.has(n.opType!) && !n.domain;

/** The Loop and Scan bodies under `g`, nested ones too. */
export function loopBodies(g: onnx.IGraphProto): onnx.IGraphProto[] {
  return (g.node ?? []).filter(isLoop).flatMap((n) => subgraphsOf(n)).flatMap((body) => [body, ...loopBodies(body)]);
}

/** The graphs that run once an iteration: Loop and Scan bodies anywhere under `g`, and every graph nested in one. */
export function iteratedGraphs(g: onnx.IGraphProto): Set<onnx.IGraphProto> {
  return new Set(allGraphs(g).flatMap((x) => (x.node ?? []).filter(isLoop).flatMap((n) => subgraphsOf(n).flatMap(allGraphs))));
}

/**
 * MatMuls and Gemms that run every iteration of a Loop or Scan on a constant weight (an initializer or a
 * Constant node's output, in any graph of the model): int4 keeps them at 8 bits unless int4Recurrent.
 */
export function iteratedWeights(g: onnx.IGraphProto): number {
  const graphs = allGraphs(g);
  const constants = new Set(graphs.flatMap((x) => [...(x.initializer ?? []).map((t) => t.name!), ...(x.node ?? []).filter((n) => n.opType === 'Constant' && !n.domain).flatMap((n) => n.output ?? [])]));
  return [...iteratedGraphs(g)].flatMap((x) => x.node ?? []).filter((n) => ['MatMul', 'Gemm'].includes(n.opType!) && !n.domain && constants.has(n.input?.[1] ?? '')).length;
}

/** Every value of the Loop and Scan bodies under `g`, by name: their inputs and node outputs. */
export function loopValues(g: onnx.IGraphProto): Set<string> {
  return new Set(loopBodies(g).flatMap((body) => [...(body.input ?? []).map((v) => v.name!), ...(body.node ?? []).flatMap((x) => x.output ?? [])]));
}

/**
 * A copy of `model` in which each of `wanted` that a Loop or Scan body computes is also an output of the
 * main graph, stacked over iterations (one more axis in front; over every iteration of every enclosing
 * loop for nested bodies). `fetched` maps each such output to the body value it carries. A value whose
 * shape changes from one iteration to the next cannot be stacked: onnxruntime then refuses the run.
 */
export function exposeLoopValues(model: onnx.IModelProto, wanted: Set<string>): { model: onnx.IModelProto; fetched: Map<string, string> } {
  const copy = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const g = copy.graph!;
  // Names unique across the model, its bodies included (GraphIndex reserves every name nested in g).
  const index = new GraphIndex(g);
  const unique = (base: string): string => index.uniqueName(base);
  const fetched = new Map<string, string>();
  for (const [outer, value] of exposeIn(g, wanted, unique)) {
    g.output = [...(g.output ?? []), { name: outer }];
    fetched.set(outer, value);
  }
  return { model: copy, fetched };
}

/** Exposes `wanted` values of the loops in `g` as outputs of their nodes in `g`: [name in g, body value]. */
function exposeIn(g: onnx.IGraphProto, wanted: Set<string>, unique: (base: string) => string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const n of g.node ?? []) {
    if (!isLoop(n)) continue;
    const body = attr(n, 'body')?.g;
    if (!body) continue;
    const inputs = new Set((body.input ?? []).map((v) => v.name!));
    const own = [...new Set((body.node ?? []).flatMap((x) => x.output ?? []).concat([...inputs]))].filter((v) => wanted.has(v)).map((v): [string, string] => [v, v]);
    for (const [inBody, value] of [...own, ...exposeIn(body, wanted, unique)]) {
      // A body input cannot be a body output as it is: an Identity passes it on.
      let source = inBody;
      if (inputs.has(inBody)) {
        source = unique(`${inBody}_each`);
        body.node = [...(body.node ?? []), node('Identity', [inBody], [source], {}, unique(`${source}_Identity`))];
      }
      body.output = [...(body.output ?? []), { name: source }];
      const stacked = unique(`${value}_iterations`);
      n.output = [...(n.output ?? []), stacked];
      // Scan may say each scan output's axis and direction: the new ones stack on axis 0, forward.
      for (const key of ['scan_output_axes', 'scan_output_directions']) {
        const a = attr(n, key);
        if (a?.ints) a.ints = [...a.ints, 0];
      }
      out.push([stacked, value]);
    }
  }
  return out;
}
