import { constants, createReadStream } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Field, Float32, List, RecordBatchReader, Table, tableToIPC, vectorFromArray, type RecordBatch } from 'apache-arrow';
import { goldenToJsonl, parseGoldenJsonl, type GoldenSample } from './evaluate';
import { QuantizeError } from './types';

const isArrow = (file: string): boolean => /\.(arrow|feather|ipc)$/i.test(file);

/**
 * Calibration samples from a file, read lazily on every pass so a large set is never held in memory:
 * JSONL (the golden format, one sample per line) or Arrow IPC (one row per sample, one list<float32>
 * column per input, each input's dims in the schema metadata `qcflow.dims.<input>` as JSON).
 */
export function calibrationSource(file: string): () => AsyncIterable<GoldenSample> {
  if (isArrow(file)) return () => arrowSamples(file);
  return () => jsonlSamples(file);
}

/**
 * A calibration file as the golden format's JSONL text, what the registry stores: JSONL as it is, Arrow
 * IPC converted (so `model register --calibration` takes what `model quantize --calibration` takes).
 */
export async function calibrationJsonl(file: string): Promise<string> {
  if (!isArrow(file)) return readFile(file, 'utf8');
  const samples: GoldenSample[] = [];
  for await (const s of arrowSamples(file)) samples.push(s);
  return goldenToJsonl(samples);
}

async function* jsonlSamples(file: string): AsyncIterable<GoldenSample> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (!line.trim()) continue;
    try {
      yield parseGoldenJsonl(line)[0]!;
    } catch (err) {
      throw new QuantizeError(`${file} line ${n}: ${(err as Error).message.replace(/^golden line 1: /, '')}`);
    }
  }
}

const ARROW_LAYOUT = 'one row per sample, a list<float32> column per input, its dims in the schema metadata qcflow.dims.<input>';

async function* arrowSamples(file: string): AsyncIterable<GoldenSample> {
  // The reader alone takes a missing file for an empty one, and garbage for a size out of range.
  await access(file, constants.R_OK).catch((err: Error) => {
    throw new QuantizeError(`${file}: ${err.message}`);
  });
  try {
    yield* arrowRows(file, await RecordBatchReader.from(createReadStream(file)));
  } catch (err) {
    if (err instanceof QuantizeError) throw err;
    throw new QuantizeError(`${file} is not an Arrow IPC file qcflow can read (${(err as Error).message}); write ${ARROW_LAYOUT}`);
  }
}

async function* arrowRows(file: string, reader: AsyncIterable<RecordBatch>): AsyncIterable<GoldenSample> {
  for await (const batch of reader) {
    const dims = new Map<string, number[]>();
    for (const f of batch.schema.fields) {
      const meta = batch.schema.metadata.get(`qcflow.dims.${f.name}`);
      if (!meta) throw new QuantizeError(`${file}: column ${f.name} has no qcflow.dims.${f.name} schema metadata (its tensor shape)`);
      dims.set(f.name, JSON.parse(meta) as number[]);
    }
    for (let r = 0; r < batch.numRows; r++) {
      const inputs: GoldenSample['inputs'] = {};
      for (const f of batch.schema.fields) {
        const v = batch.getChild(f.name)!.get(r) as { toArray(): Float32Array } | null;
        if (!v) throw new QuantizeError(`${file}: row ${r + 1} has no value for ${f.name}`);
        inputs[f.name] = { dims: dims.get(f.name)!, data: Float32Array.from(v.toArray()) };
      }
      yield { inputs };
    }
  }
}

/** Writes samples as an Arrow IPC file in the layout calibrationSource reads (for tests and tooling). */
export function samplesToArrow(samples: GoldenSample[]): Uint8Array {
  const names = Object.keys(samples[0]?.inputs ?? {});
  const type = new List(new Field('item', new Float32(), false));
  const table = new Table(Object.fromEntries(names.map((n) => [n, vectorFromArray(samples.map((s) => s.inputs[n]!.data), type)])));
  for (const n of names) table.schema.metadata.set(`qcflow.dims.${n}`, JSON.stringify(samples[0]!.inputs[n]!.dims));
  return tableToIPC(table, 'file');
}
