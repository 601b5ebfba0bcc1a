import type { onnx } from '../onnx/proto';
import type { GraphIndex } from '../onnx/graph';
import type { GptqLayer } from './gptq';

export const METHODS = ['int8-dynamic', 'int8-static', 'fp16', 'int4'] as const;

/** Why int8-static keeps a node float that its calibration never ran (the CLI counts them by it). */
export const NOT_CALIBRATED = 'calibration did not reach it (an If branch no calibration sample takes, or a Loop or Scan body whose values change shape from one iteration to the next): no range for its input or output';

/** The recurrent operators whose weights (W, R) are quantized (src/quantize/recurrent.ts). */
export const RECURRENT_OPS: readonly string[] = ['LSTM', 'GRU', 'RNN'];
export type Method = (typeof METHODS)[number];

export interface QuantizeOptions {
  method: Method;
  /** Weights quantized per output channel (int8 methods); default true. */
  perChannel?: boolean;
  /** Weights symmetric around zero (default); false stores zero points (int4: per block). */
  symmetric?: boolean;
  /**
   * Weights that feed an integer kernel (MatMulInteger, QLinear*) keep to 7 bits so the result is the same
   * on every CPU (see qRange); default true. False gives 8-bit weights for targets known to have VNNI or ARM dot products.
   */
  reduceRange?: boolean;
  /** int4 block size along K: 16, 32, 64, 128 or 256; default 32. */
  blockSize?: number;
  /**
   * int4: Conv weights in 4-bit blocks too (int4 tensors restored by Cast-21; the model is raised to
   * opset 21), where a filter has 64 weights or more, splits evenly into blocks and is not grouped. Off by default: Convs keep 8-bit weights, as
   * 4 bits on every convolution of a mobile conv net costs more fidelity than most budgets allow.
   */
  int4Conv?: boolean;
  /**
   * int4: LSTM, GRU and RNN weights (W and R) in 4-bit blocks along each gate unit's inputs too (raised to
   * opset 21 as for int4Conv). Off by default: an error in R is applied again at every time step
   * (silero-vad's speech probabilities move 0.011–0.017 on recorded speech against 0.006–0.007 at 8 bits).
   * The same holds for MatMul and Gemm weights read inside a Loop or Scan body (an RNN cell in a scripted
   * torch loop: cosine 0.9954 in 4 bits, 0.9999 in 8), which keep 8 bits unless this is set.
   */
  int4Recurrent?: boolean;
  /** int4: output layers (the last MatMul or Gemm before a graph output) in 4 bits too; by default small or tied ones keep 8. */
  int4Head?: boolean;
  /** Nodes (by name) kept in fp32. */
  excludeNodes?: string[];
  /** Op types kept in fp32 (for fp16: the op block list, added to the defaults). */
  excludeOps?: string[];
  /**
   * Drop every node's metadata_props (torch.export writes each node's stack trace, FX node and module path
   * there: 21% of silero-vad's op18 export, source paths included). Kept by default: they are the model's.
   */
  dropNodeMetadata?: boolean;
  /**
   * Rename every value and node but the graph's inputs and outputs to short ids (compactNames): an
   * exporter's module-path names are a third of a small int4 transformer's file. Off by default: the
   * names are what a person debugging or profiling the model reads.
   */
  compactNames?: boolean;
  /**
   * int4: per node (by name), the calibrated layer (Σ x·xᵀ of the input its weight multiplies — a Conv's
   * patches — then its codes); quantizeModelCalibrated fills it in, and those weights take GPTQ codes.
   */
  gptq?: Map<string, GptqLayer>;
  /** int8-static: calibrated activation ranges (quantizeModelStatic fills them in). */
  ranges?: Map<string, { min: number; max: number }>;
  /**
   * int8-static: the weightless nodes the calibration chose to put in QDQ (ACTIVATION_OPS: Adds, Relus), by
   * name; quantizeModelStatic fills it in. A range alone does not choose a node: its
   * tensors may be calibrated for other readers.
   */
  staticNodes?: Set<string>;
  /** int8-static: a Conv's bias (by node name) corrected for the mean shift of its quantized output (bias-correction.ts). */
  biasCorrections?: Map<string, Float32Array>;
}

/** What happened to one node. */
export interface NodeOutcome {
  node: string;
  op: string;
  action: 'quantized' | 'kept';
  /** Why a node of a handled op type was kept (excluded, dynamic weight, …). */
  reason?: string;
}

/** Handed to each per-operator handler: the graph index, the options, and a place to add tensors. */
export interface QuantizeContext {
  index: GraphIndex;
  /** The model's default-domain opset. */
  opset: number;
  options: Required<Pick<QuantizeOptions, 'perChannel' | 'symmetric' | 'blockSize' | 'reduceRange'>> & QuantizeOptions;
  /** The graph runs once an iteration: a Loop or Scan body, or a graph nested in one. */
  iterated: boolean;
  /** Bytes of the model's float initializers, every graph's (what a layer's share is of). */
  modelFloatBytes: number;
  addInitializer(t: onnx.ITensorProto): void;
  /** Reuses one DynamicQuantizeLinear per activation even when several MatMuls read it. */
  dynamicQuantized: Map<string, { q: string; scale: string; zeroPoint: string; nodes: onnx.INodeProto[] }>;
  /** Extra opset imports the rewritten graph needs (e.g. com.microsoft for MatMulNBits). */
  domains: Set<string>;
  /** int8-static: the dequantized name of each activation already given a Q/DQ pair. */
  qdq: Map<string, string>;
  /**
   * A weight read by several nodes (exporters alias one initializer across layers) is quantized once:
   * `make` runs for the first reader of `key`; the rest get its value and `first` false.
   */
  once<T>(key: string, make: () => T): { value: T; first: boolean };
}

/**
 * One operator's quantizer for one method, like onnxruntime's per-op QuantOperator classes: `check` says
 * why a node cannot be quantized (or undefined when it can), `quantize` returns its replacement nodes,
 * which write the node's original outputs so the rest of the graph is untouched.
 */
export interface OpQuantizer {
  method: Method;
  opType: string;
  /** Which inputs hold the weights it replaces ([1] unless said: B of MatMul, W of Conv; Gather's table is 0; an LSTM's W and R). */
  weightInputs?: number[];
  /** False for nodes of its op that hold no weight at all (a Gather over a shape): neither quantized nor reported. */
  applies?(node: onnx.INodeProto, ctx: QuantizeContext): boolean;
  check(node: onnx.INodeProto, ctx: QuantizeContext): string | undefined;
  quantize(node: onnx.INodeProto, ctx: QuantizeContext): onnx.INodeProto[];
}

/** Input a method cannot handle (opset, op, shapes): non-retryable, named. */
export class QuantizeError extends Error {
  override name = 'QuantizeError';
}
