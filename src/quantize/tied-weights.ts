import { intAttr } from '../onnx/graph';
import { floatValues, transpose } from '../onnx/tensor';
import type { QuantizeContext } from './types';

/**
 * Tied weights: an embedding table (a Gather's input 0, [rows, width]) whose values an LM head also holds.
 * Exporters write the two as separate initializers, so ties are found by content.
 */
const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * Whether a MatMul or Gemm weight holds this table's values, as that node reads it: a MatMul's B [K, N] (and
 * a Gemm's without transB) is the table transposed (`columns`), a Gemm's with transB is the table itself.
 */
export function tiedToAHead(ctx: QuantizeContext, values: Float32Array, columns: Float32Array, rows: number, width: number): boolean {
  for (const n of ctx.index.graph.node ?? []) {
    if ((n.opType !== 'MatMul' && n.opType !== 'Gemm') || (n.domain ?? '') !== '') continue;
    const w = ctx.index.floatInitializer(n.input?.[1]);
    if (!w) continue;
    const dims = (w.dims ?? []).map(Number);
    const transposed = n.opType === 'Gemm' && intAttr(n, 'transB', 0) === 1;
    if (dims.length !== 2 || dims[0] !== (transposed ? rows : width) || dims[1] !== (transposed ? width : rows)) continue;
    if (bytes(floatValues(w)).equals(bytes(transposed ? values : columns))) return true;
  }
  return false;
}

/** Whether a head's weight W [K, N] is some Gather's table [N, K] transposed. */
export function tiedToATable(ctx: QuantizeContext, w: Float32Array, k: number, n: number): boolean {
  let rows: Buffer | undefined;
  for (const g of ctx.index.graph.node ?? []) {
    if (g.opType !== 'Gather' || (g.domain ?? '') !== '' || intAttr(g, 'axis', 0) !== 0) continue;
    const table = ctx.index.floatInitializer(g.input?.[0]);
    const dims = (table?.dims ?? []).map(Number);
    if (!table || dims.length !== 2 || dims[0] !== n || dims[1] !== k) continue;
    rows ??= bytes(transpose(w, [k, n], [1, 0]));
    if (rows.equals(bytes(floatValues(table)))) return true;
  }
  return false;
}
