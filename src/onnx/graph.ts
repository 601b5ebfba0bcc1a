import { createHash } from 'node:crypto';
import { onnx, OnnxFormatError } from './proto';
import { tensorBytes } from './tensor';

/**
 * Indexes over a graph that quantizers need: initializers by name, who produces and who consumes each
 * value. The index is rebuilt after edits (`refresh`), so handlers see one consistent picture. A node
 * holding subgraphs (If, Loop, Scan) consumes what they read from this graph (its implicit inputs), so a
 * weight only a branch reads is never taken for unused or for one reader's own. `names`: the model's names,
 * shared by the indexes of all its graphs, so a name made in one is new in all.
 */
export class GraphIndex {
  initializers = new Map<string, onnx.ITensorProto>();
  producers = new Map<string, onnx.INodeProto>();
  consumers = new Map<string, onnx.INodeProto[]>();
  private readonly names: Set<string>;

  constructor(readonly graph: onnx.IGraphProto, names?: Set<string>) {
    this.names = names ?? new Set();
    this.refresh();
  }

  refresh(): void {
    const g = this.graph;
    this.initializers = new Map((g.initializer ?? []).map((t) => [t.name!, t]));
    this.producers = new Map();
    this.consumers = new Map();
    for (const name of namesIn(g)) this.names.add(name);
    for (const n of g.node ?? []) {
      for (const o of n.output ?? []) this.producers.set(o, n);
      for (const i of [...(n.input ?? []), ...implicitInputs(n)]) {
        if (!i) continue;
        const list = this.consumers.get(i) ?? [];
        list.push(n);
        this.consumers.set(i, list);
      }
    }
  }

  /** A name not used by any value, node or initializer of the graph (reserved once returned). */
  uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  /** The initializer called `name` when it holds float32 data (the weights quantizers take), else undefined. */
  floatInitializer(name: string | undefined): onnx.ITensorProto | undefined {
    const t = name ? this.initializers.get(name) : undefined;
    return t && t.dataType === onnx.TensorProto.DataType.FLOAT ? t : undefined;
  }

  isGraphOutput(name: string): boolean {
    return (this.graph.output ?? []).some((o) => o.name === name);
  }
}

/** The graphs a node holds: If's branches, Loop's and Scan's bodies. */
export function subgraphsOf(n: onnx.INodeProto): onnx.IGraphProto[] {
  return (n.attribute ?? []).flatMap((a) => [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]);
}

/** `g` and every graph nested in its nodes, depth first, `g` first. */
export function allGraphs(g: onnx.IGraphProto): onnx.IGraphProto[] {
  return [g, ...(g.node ?? []).flatMap((n) => subgraphsOf(n).flatMap(allGraphs))];
}

/** Each graph nested in `g` (at any depth) mapped to the graph whose node holds it. */
export function parentGraphs(g: onnx.IGraphProto, into = new Map<onnx.IGraphProto, onnx.IGraphProto>()): Map<onnx.IGraphProto, onnx.IGraphProto> {
  for (const n of g.node ?? []) {
    for (const sub of subgraphsOf(n)) {
      into.set(sub, g);
      parentGraphs(sub, into);
    }
  }
  return into;
}

/** The values a node's subgraphs read from the graphs around them (onnxruntime's implicit inputs). */
export function implicitInputs(n: onnx.INodeProto): string[] {
  const out = new Set<string>();
  for (const g of subgraphsOf(n)) for (const x of outerReferences(g)) out.add(x);
  return [...out];
}

/** Names `g` (or a graph nested in it) reads without defining them. */
export function outerReferences(g: onnx.IGraphProto): Set<string> {
  const defined = new Set([...(g.input ?? []).map((v) => v.name!), ...(g.initializer ?? []).map((t) => t.name!), ...(g.node ?? []).flatMap((n) => n.output ?? [])]);
  const out = new Set<string>();
  for (const n of g.node ?? []) for (const i of [...(n.input ?? []), ...implicitInputs(n)]) if (i && !defined.has(i)) out.add(i);
  for (const o of g.output ?? []) if (!defined.has(o.name!)) out.add(o.name!);
  return out;
}

/** Bytes of the nodes' metadata_props in `g` and the graphs nested in it (torch.export's stack traces), about as serialised. */
export function nodeMetadataBytes(g: onnx.IGraphProto): number {
  return allGraphs(g).flatMap((x) => x.node ?? []).reduce((b, n) => b + (n.metadataProps ?? []).reduce((e, p) => e + (p.key?.length ?? 0) + (p.value?.length ?? 0) + 4, 0), 0);
}

/** Bytes of the names in `g` and the graphs nested in it (nodes', the values they read and write, initializers'), about as serialised. */
export function nameBytes(g: onnx.IGraphProto): number {
  return allGraphs(g).reduce((b, x) => b
    + (x.node ?? []).reduce((c, n) => c + (n.name?.length ?? 0) + [...(n.input ?? []), ...(n.output ?? [])].reduce((d, s) => d + s.length + 2, 0), 0)
    + (x.initializer ?? []).reduce((c, t) => c + (t.name?.length ?? 0) + 2, 0), 0);
}

/**
 * Renames every value, initializer and node of `g` and its nested graphs to short ids (base 36), keeping
 * the main graph's inputs and outputs: exporters name each intermediate by its module path
 * ("/enc/layers.0/self_attn/Reshape_2_output_0"), which is a third of a small int4 transformer's file and
 * which nothing reads at run time. One map across all graphs, as a body reads outer values by name.
 */
export function compactNames(g: onnx.IGraphProto): void {
  const kept = new Set([...(g.input ?? []), ...(g.output ?? [])].map((v) => v.name!));
  const renamed = new Map<string, string>();
  let next = 0;
  const short = (name: string | null | undefined): string => {
    if (!name || kept.has(name)) return name ?? '';
    let id = renamed.get(name);
    if (id === undefined) {
      do id = (next++).toString(36); while (kept.has(id));
      renamed.set(name, id);
    }
    return id;
  };
  for (const x of allGraphs(g)) {
    for (const n of x.node ?? []) {
      n.name = '';
      n.input = (n.input ?? []).map(short);
      n.output = (n.output ?? []).map(short);
    }
    for (const v of [...(x.initializer ?? []), ...(x.sparseInitializer ?? []).flatMap((t) => (t.values ? [t.values] : [])), ...(x.input ?? []), ...(x.output ?? []), ...(x.valueInfo ?? [])]) v.name = short(v.name);
  }
}

/** Every name in `g` and the graphs nested in it: values, initializers, nodes. */
export function namesIn(g: onnx.IGraphProto): string[] {
  return allGraphs(g).flatMap((x) => [
    ...(x.initializer ?? []).map((t) => t.name!), ...(x.input ?? []).map((v) => v.name!), ...(x.output ?? []).map((v) => v.name!),
    ...(x.node ?? []).flatMap((n) => [...(n.name ? [n.name] : []), ...(n.output ?? [])]),
  ]);
}

/**
 * Moves each initializer that one subgraph alone reads into that subgraph (as deep as it goes), so the
 * graph that uses it can quantize it: silero-vad keeps its 16 kHz and 8 kHz models' weights in the main
 * graph and reads each set from one branch of an If. Returns how many moved.
 */
export function moveInitializersIntoSubgraphs(g: onnx.IGraphProto): number {
  const explicit = new Set([...(g.node ?? []).flatMap((n) => n.input ?? []), ...(g.input ?? []).map((v) => v.name!), ...(g.output ?? []).map((v) => v.name!)]);
  const readers = new Map<string, onnx.IGraphProto[]>();
  for (const n of g.node ?? []) for (const sub of subgraphsOf(n)) for (const x of outerReferences(sub)) readers.set(x, [...(readers.get(x) ?? []), sub]);
  let moved = 0;
  const kept: onnx.ITensorProto[] = [];
  for (const t of g.initializer ?? []) {
    const subs = readers.get(t.name!) ?? [];
    if (explicit.has(t.name!) || subs.length !== 1) {
      kept.push(t);
      continue;
    }
    subs[0]!.initializer = [...(subs[0]!.initializer ?? []), t];
    moved++;
  }
  g.initializer = kept;
  for (const n of g.node ?? []) for (const sub of subgraphsOf(n)) moved += moveInitializersIntoSubgraphs(sub);
  return moved;
}

/**
 * Nodes in an order where every input is produced before use (Kahn's algorithm, stable on the original
 * order). Throws on a cycle: ONNX graphs must be acyclic.
 */
export function topologicalSort(graph: onnx.IGraphProto): onnx.INodeProto[] {
  const nodes = graph.node ?? [];
  const produced = new Map<string, number>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => {
    const other = o ? produced.get(o) : undefined;
    if (other !== undefined) throw new OnnxFormatError(`graph ${graph.name ?? ''}: value ${JSON.stringify(o)} is produced by two nodes (${nodes[other]!.name || nodes[other]!.opType} and ${n.name || n.opType}); an ONNX graph assigns each value once: fix or re-export the model`);
    if (o) produced.set(o, i);
  }));
  const deps = nodes.map((n) => new Set([...(n.input ?? []), ...implicitInputs(n)].filter((x) => x && produced.has(x)).map((x) => produced.get(x)!)));
  const users = nodes.map(() => [] as number[]);
  deps.forEach((d, i) => d.forEach((j) => users[j]!.push(i)));
  const remaining = deps.map((d) => d.size);
  const ready = remaining.flatMap((r, i) => (r === 0 ? [i] : []));
  const out: onnx.INodeProto[] = [];
  while (ready.length) {
    ready.sort((a, b) => a - b);
    const i = ready.shift()!;
    out.push(nodes[i]!);
    for (const u of users[i]!) if (--remaining[u]! === 0) ready.push(u);
  }
  if (out.length !== nodes.length) throw new OnnxFormatError(`graph ${graph.name ?? ''} has a cycle through ${nodes.filter((_, i) => remaining[i]! > 0).map((n) => n.name || n.opType).slice(0, 5).join(', ')}; an ONNX graph must be acyclic: fix or re-export the model`);
  return out;
}

/** Drops initializers no node (nor a subgraph of one, nor a graph output) reads; returns their names. */
export function removeUnusedInitializers(graph: onnx.IGraphProto): string[] {
  const used = new Set<string>([...(graph.node ?? []).flatMap((n) => [...(n.input ?? []), ...implicitInputs(n)]), ...(graph.output ?? []).map((o) => o.name!)]);
  const removed = (graph.initializer ?? []).filter((t) => !used.has(t.name!)).map((t) => t.name!);
  graph.initializer = (graph.initializer ?? []).filter((t) => used.has(t.name!));
  // Older exporters list initializers among the inputs too; those entries go with them.
  graph.input = (graph.input ?? []).filter((v) => !removed.includes(v.name!));
  return removed;
}

/** How many nodes of each op type (the `analyze` step's histogram). */
export function opHistogram(graph: onnx.IGraphProto): Record<string, number> {
  const h: Record<string, number> = {};
  for (const n of graph.node ?? []) {
    const key = n.domain ? `${n.domain}.${n.opType}` : n.opType!;
    h[key] = (h[key] ?? 0) + 1;
  }
  return h;
}

export function attr(n: onnx.INodeProto, name: string): onnx.IAttributeProto | undefined {
  return (n.attribute ?? []).find((a) => a.name === name);
}

/** What a node goes by in reports, `--exclude-nodes` and maps: its name, or its first output where the exporter left it unnamed. */
export const nodeKey = (n: onnx.INodeProto): string => n.name || n.output![0]!;

export function intAttr(n: onnx.INodeProto, name: string, fallback: number): number {
  const a = attr(n, name);
  return a?.i === undefined || a.i === null ? fallback : Number(a.i);
}

export function intsAttr(n: onnx.INodeProto, name: string): number[] | undefined {
  return attr(n, name)?.ints?.map(Number);
}

export function floatAttr(n: onnx.INodeProto, name: string, fallback: number): number {
  const a = attr(n, name);
  return a?.f === undefined || a.f === null ? fallback : Number(a.f);
}

/**
 * Turns `Constant` nodes holding a tensor into initializers (paddle2onnx and some other exporters store
 * every weight that way), so quantizers see constant weights where they are. Returns how many were moved.
 */
export function constantsToInitializers(graph: onnx.IGraphProto): number {
  const kept: onnx.INodeProto[] = [];
  const moved: onnx.ITensorProto[] = [];
  for (const n of graph.node ?? []) {
    const value = n.opType === 'Constant' && (n.domain ?? '') === '' && n.attribute?.length === 1 ? n.attribute[0] : undefined;
    if (value?.name === 'value' && value.t) {
      moved.push({ ...value.t, name: n.output![0]! });
      continue;
    }
    kept.push(n);
  }
  graph.node = kept;
  graph.initializer = [...(graph.initializer ?? []), ...moved];
  return moved.length;
}

/**
 * Stores once each initializer that several graphs of the model hold byte for byte (at least `minBytes`):
 * in the innermost graph around all of them, under the first one's name, every reader renamed to it. Both
 * branches of silero-vad's If read the same LSTM weights, and each quantizes its own copy of them; one
 * copy, in the graph around the If, is what the model needs. Returns how many copies went.
 */
export function shareIdenticalInitializers(root: onnx.IGraphProto, minBytes = 1024): number {
  const parents = parentGraphs(root);
  const lineage = (g: onnx.IGraphProto): onnx.IGraphProto[] => [g, ...(parents.has(g) ? lineage(parents.get(g)!) : [])];
  const groups = new Map<string, Array<{ graph: onnx.IGraphProto; tensor: onnx.ITensorProto; bytes: Uint8Array }>>();
  for (const graph of allGraphs(root)) {
    // A graph's own inputs and outputs keep their names: they are how it is called.
    const inputs = new Set([...(graph.input ?? []), ...(graph.output ?? [])].map((v) => v.name!));
    for (const tensor of graph.initializer ?? []) {
      if (inputs.has(tensor.name!) || tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) continue;
      const bytes = tensorBytes(tensor);
      if (bytes.length < minBytes) continue;
      const key = `${tensor.dataType}|${(tensor.dims ?? []).join('x')}|${createHash('sha1').update(bytes).digest('hex')}`;
      groups.set(key, [...(groups.get(key) ?? []), { graph, tensor, bytes }]);
    }
  }
  let shared = 0;
  for (const members of groups.values()) {
    const [first, ...rest] = members;
    const view = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.length);
    const same = rest.filter((m) => view(m.bytes).equals(view(first!.bytes)));
    if (!same.length) continue;
    const around = lineage(first!.graph).find((a) => same.every((m) => lineage(m.graph).includes(a)))!;
    for (const m of [first!, ...same]) m.graph.initializer = (m.graph.initializer ?? []).filter((t) => t !== m.tensor);
    around.initializer = [...(around.initializer ?? []), first!.tensor];
    for (const m of same) renameReads(m.graph, m.tensor.name!, first!.tensor.name!);
    shared += same.length;
  }
  return shared;
}

/** Points every read of `from` in `g` and the graphs nested in it at `to`. */
function renameReads(g: onnx.IGraphProto, from: string, to: string): void {
  for (const x of allGraphs(g)) {
    for (const n of x.node ?? []) n.input = (n.input ?? []).map((i) => (i === from ? to : i));
    for (const o of x.output ?? []) if (o.name === from) o.name = to;
  }
}
