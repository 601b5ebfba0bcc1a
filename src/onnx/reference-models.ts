import { encodeModel } from './proto';
import { prng } from '../util/prng';
import { F32, I64, floatTensor, int64Tensor, model, node, valueInfo } from './build';
import type { ModelManifest } from '../qc/inference/manifest';

/**
 * Small, fully-known ONNX models built in code: the demo's and the tests' layer-3 models, and the
 * benchmark's. Their weights are chosen so the expected prediction of any input can be worked out by hand.
 */
export interface ReferenceModel {
  onnx: Uint8Array;
  manifest: ModelManifest;
  /** Hugging Face tokenizer.json, for text models. */
  tokenizer?: Record<string, unknown>;
}

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]'] as const;

/** A BERT-style tokenizer.json (lower-casing, WordPiece over whole words) for the given vocabulary. */
export function wordTokenizerJson(words: string[]): Record<string, unknown> {
  const vocab = Object.fromEntries([...SPECIALS, ...words].map((w, i) => [w, i]));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', 3], cls: ['[CLS]', 2] },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

/**
 * Bag-of-words classifier: logits = Σ over unmasked tokens of E[token], with E[w][k] = strength when word w
 * is a cue for class k. Inputs input_ids and attention_mask (int64, [batch, seq]), output logits [batch, classes].
 */
export function bagOfWordsTextModel(opts: { cues: Record<string, string[]>; fillers?: string[]; strength?: number; maxLength?: number }): ReferenceModel {
  const labels = Object.keys(opts.cues);
  const words = [...new Set([...labels.flatMap((l) => opts.cues[l]!), ...(opts.fillers ?? [])])];
  const vocabSize = SPECIALS.length + words.length;
  const strength = opts.strength ?? 3;
  const emb = new Float32Array(vocabSize * labels.length);
  labels.forEach((label, k) => {
    for (const w of opts.cues[label]!) emb[(SPECIALS.length + words.indexOf(w)) * labels.length + k] = strength;
  });
  const onnx = encodeModel(model({
    name: 'bag_of_words',
    inputs: [valueInfo('input_ids', I64, ['batch', 'seq']), valueInfo('attention_mask', I64, ['batch', 'seq'])],
    outputs: [valueInfo('logits', F32, ['batch', labels.length])],
    initializers: [
      floatTensor('embedding', [vocabSize, labels.length], emb),
      floatTensor('bias', [labels.length], new Array(labels.length).fill(0)),
      int64Tensor('axis2', [1], [2]),
      int64Tensor('axis1', [1], [1]),
    ],
    nodes: [
      node('Gather', ['embedding', 'input_ids'], ['token_logits'], { axis: 0 }),
      node('Cast', ['attention_mask'], ['mask_f'], { to: F32 }),
      node('Unsqueeze', ['mask_f', 'axis2'], ['mask_3d']),
      node('Mul', ['token_logits', 'mask_3d'], ['masked']),
      node('ReduceSum', ['masked', 'axis1'], ['summed'], { keepdims: 0 }),
      node('Add', ['summed', 'bias'], ['logits']),
    ],
  }));
  return {
    onnx,
    tokenizer: wordTokenizerJson(words),
    manifest: { labels, output: 'logits', adapter: { kind: 'text', textPointer: '/text', maxLength: opts.maxLength ?? 32 } },
  };
}

/**
 * Colour classifier CNN: a 3×3 convolution whose class-k filter is the centre tap of channel k, ReLU,
 * global average pooling. After mean/std 0.5 normalisation a pure red image scores (strength, 0, 0).
 */
export function tinyColorCnn(opts: { size?: number; strength?: number } = {}): ReferenceModel {
  const size = opts.size ?? 16;
  const strength = opts.strength ?? 5;
  const labels = ['red', 'green', 'blue'];
  const w = new Float32Array(3 * 3 * 3 * 3);
  for (let k = 0; k < 3; k++) w[((k * 3 + k) * 3 + 1) * 3 + 1] = strength;
  const onnx = encodeModel(model({
    name: 'tiny_color_cnn',
    inputs: [valueInfo('pixel_values', F32, ['batch', 3, size, size])],
    outputs: [valueInfo('logits', F32, ['batch', 3])],
    initializers: [floatTensor('conv_w', [3, 3, 3, 3], w), floatTensor('conv_b', [3], [0, 0, 0])],
    nodes: [
      node('Conv', ['pixel_values', 'conv_w', 'conv_b'], ['conv'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
      node('Relu', ['conv'], ['relu']),
      node('GlobalAveragePool', ['relu'], ['pooled']),
      node('Flatten', ['pooled'], ['logits'], { axis: 1 }),
    ],
  }));
  return {
    onnx,
    manifest: { labels, output: 'logits', adapter: { kind: 'image', mediaIndex: 0, width: size, height: size, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } },
  };
}

/** Linear classifier over named payload fields: logits = x·W + b, W given as [field][class]. */
export function linearFeaturesModel(opts: { fields: string[]; labels: string[]; weights: number[][]; bias?: number[] }): ReferenceModel {
  const f = opts.fields.length;
  const c = opts.labels.length;
  const onnx = encodeModel(model({
    name: 'linear_features',
    inputs: [valueInfo('features', F32, ['batch', f])],
    outputs: [valueInfo('logits', F32, ['batch', c])],
    initializers: [floatTensor('w', [f, c], opts.weights.flat()), floatTensor('b', [c], opts.bias ?? new Array(c).fill(0))],
    nodes: [node('MatMul', ['features', 'w'], ['xw']), node('Add', ['xw', 'b'], ['logits'])],
  }));
  return { onnx, manifest: { labels: opts.labels, output: 'logits', adapter: { kind: 'features', fields: opts.fields } } };
}

/**
 * A small transformer text classifier with a realistic cost per sample (unlike the bag-of-words model's
 * microseconds): embeddings of width `dim`, `layers` pre-norm encoder blocks (single-head attention,
 * Gelu MLP), masked mean pooling, a linear head. Cue words also push their class through the embedding,
 * so predictions follow the cues. For benchmarks that must measure inference, not bookkeeping.
 */
export function transformerTextModel(opts: { cues: Record<string, string[]>; dim?: number; layers?: number; maxLength?: number; seed?: number }): ReferenceModel {
  const labels = Object.keys(opts.cues);
  const words = [...new Set(labels.flatMap((l) => opts.cues[l]!))];
  const V = SPECIALS.length + words.length;
  const d = opts.dim ?? 64;
  const C = labels.length;
  const r = prng(opts.seed ?? 5);
  const gauss = (n: number, std: number): Float32Array => Float32Array.from({ length: n }, () => (r() + r() + r() + r() - 2) * std * Math.sqrt(3));
  const emb = gauss(V * d, 0.5);
  // The first C embedding dimensions carry the cue class, and the head reads them.
  labels.forEach((label, k) => { for (const w of opts.cues[label]!) emb[(SPECIALS.length + words.indexOf(w)) * d + k] = 3; });
  const head = new Float32Array(d * C);
  for (let k = 0; k < C; k++) head[k * C + k] = 4;
  const inits = [
    floatTensor('embedding', [V, d], emb), floatTensor('head', [d, C], head), floatTensor('head_b', [C], new Array(C).fill(0)),
    floatTensor('attn_scale', [], [1 / Math.sqrt(d)]), int64Tensor('axis1', [1], [1]), int64Tensor('axis2', [1], [2]),
  ];
  const nodes = [
    node('Gather', ['embedding', 'input_ids'], ['x0'], { axis: 0 }),
    node('Cast', ['attention_mask'], ['mask_f'], { to: F32 }),
    node('Unsqueeze', ['mask_f', 'axis2'], ['mask_3d']),
  ];
  let x = 'x0';
  for (let l = 0; l < (opts.layers ?? 2); l++) {
    const p = `l${l}_`;
    // Small residual weights keep the cue dimensions dominant after the blocks.
    for (const w of ['wq', 'wk', 'wv', 'wo']) inits.push(floatTensor(p + w, [d, d], gauss(d * d, 0.02)));
    inits.push(floatTensor(p + 'w1', [d, 4 * d], gauss(4 * d * d, 0.02)), floatTensor(p + 'w2', [4 * d, d], gauss(4 * d * d, 0.02)));
    inits.push(floatTensor(p + 'ln_s', [d], new Array(d).fill(1)), floatTensor(p + 'ln_b', [d], new Array(d).fill(0)));
    nodes.push(
      node('LayerNormalization', [x, p + 'ln_s', p + 'ln_b'], [p + 'n1'], { axis: -1 }),
      node('MatMul', [p + 'n1', p + 'wq'], [p + 'q']), node('MatMul', [p + 'n1', p + 'wk'], [p + 'k']), node('MatMul', [p + 'n1', p + 'wv'], [p + 'v']),
      node('Transpose', [p + 'k'], [p + 'kt'], { perm: [0, 2, 1] }),
      node('MatMul', [p + 'q', p + 'kt'], [p + 's']), node('Mul', [p + 's', 'attn_scale'], [p + 'ss']),
      node('Softmax', [p + 'ss'], [p + 'a'], { axis: -1 }), node('MatMul', [p + 'a', p + 'v'], [p + 'c']),
      node('MatMul', [p + 'c', p + 'wo'], [p + 'o']), node('Add', [x, p + 'o'], [p + 'r1']),
      node('LayerNormalization', [p + 'r1', p + 'ln_s', p + 'ln_b'], [p + 'n2'], { axis: -1 }),
      node('MatMul', [p + 'n2', p + 'w1'], [p + 'f1']), node('Gelu', [p + 'f1'], [p + 'g']), node('MatMul', [p + 'g', p + 'w2'], [p + 'f2']),
      node('Add', [p + 'r1', p + 'f2'], [p + 'out']),
    );
    x = p + 'out';
  }
  nodes.push(
    node('Mul', [x, 'mask_3d'], ['masked']), node('ReduceSum', ['masked', 'axis1'], ['summed'], { keepdims: 0 }),
    node('ReduceSum', ['mask_f', 'axis1'], ['count'], { keepdims: 1 }), node('Div', ['summed', 'count'], ['pooled']),
    node('MatMul', ['pooled', 'head'], ['hl']), node('Add', ['hl', 'head_b'], ['logits']),
  );
  const onnx = encodeModel(model({
    name: 'transformer_text', opset: 20,
    inputs: [valueInfo('input_ids', I64, ['batch', 'seq']), valueInfo('attention_mask', I64, ['batch', 'seq'])],
    outputs: [valueInfo('logits', F32, ['batch', C])],
    initializers: inits, nodes,
  }));
  return { onnx, tokenizer: wordTokenizerJson(words), manifest: { labels, output: 'logits', adapter: { kind: 'text', textPointer: '/text', maxLength: opts.maxLength ?? 32 } } };
}
