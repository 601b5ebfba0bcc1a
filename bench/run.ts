/**
 * `npm run bench`: JSON lines, each comparing a qcflow code path with a baseline measured in the same run.
 *  - layer1: checkCompliance (schema + regex rules + findings) vs bare ajv validate of the same payloads.
 *  - release-writer: JSONL + Arrow chunked writer vs writing JSONL alone; plus peak RSS growth, which
 *    must stay flat as the release grows because the writer holds one chunk at a time.
 */
import { mkdtempSync, readFileSync, rmSync, createWriteStream } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateDemoLines } from '../src/demo/dataset';
import { createAjv, parseLine, type IngestSample } from '../src/ingest/envelope';
import { checkCompliance, compileCompliance, type RegexRule } from '../src/qc/compliance';
import { jsonlLine, ReleaseFileWriter, type ReleaseRow } from '../src/release/writers';

const root = path.resolve(__dirname, '..', 'demo');
const schema = JSON.parse(readFileSync(path.join(root, 'schema.json'), 'utf8')) as Record<string, unknown>;
const rules = JSON.parse(readFileSync(path.join(root, 'rules.json'), 'utf8')) as RegexRule[];

function time(fn: () => void, reps: number): number {
  fn();
  const t = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) fn();
  return Number(process.hrtime.bigint() - t) / 1e6 / reps;
}

function benchLayer1(): void {
  const samples = generateDemoLines(5000).map((l) => parseLine(l.line)).flatMap((p) => (p.ok ? [p.sample] : [])) as IngestSample[];
  const compiled = compileCompliance({ jsonSchema: schema, regexRules: rules });
  const bare = createAjv().compile(schema);
  const ms = time(() => { for (const s of samples) checkCompliance(s, compiled); }, 5);
  const baseMs = time(() => { for (const s of samples) bare(s.payload); }, 5);
  console.log(JSON.stringify({
    bench: 'layer1.checkCompliance', samples: samples.length, samplesPerSec: Math.round(samples.length / (ms / 1000)),
    baseline: 'ajv.validate(payload)', baselineSamplesPerSec: Math.round(samples.length / (baseMs / 1000)), ratio: +(baseMs / ms).toFixed(3),
  }));
}

const row = (i: number): ReleaseRow => ({
  sampleId: `id-${i}`, externalId: `ext-${i}`, revision: 1, contentHash: 'h'.repeat(64), payload: { text: `sample ${i} `.repeat(8), lang: 'en' },
  media: [], annotations: [{ annotator: 'ann-1', labels: { classes: ['positive'] } }], qc: { layer1: { passed: true, score: 1 } }, acceptedAt: new Date(0),
});

async function benchWriter(n: number): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-bench-'));
  try {
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const t0 = process.hrtime.bigint();
    const w = new ReleaseFileWriter(path.join(dir, 'd.jsonl'), path.join(dir, 'd.arrow'));
    for (let i = 0; i < n; i += 1000) {
      await w.writeChunk(Array.from({ length: Math.min(1000, n - i) }, (_, k) => row(i + k)));
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    await w.finish();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const t1 = process.hrtime.bigint();
    const out = createWriteStream(path.join(dir, 'b.jsonl'));
    for (let i = 0; i < n; i += 1000) {
      const text = Array.from({ length: Math.min(1000, n - i) }, (_, k) => jsonlLine(row(i + k))).join('');
      if (!out.write(text)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r) => out.end(() => r()));
    const baseMs = Number(process.hrtime.bigint() - t1) / 1e6;
    console.log(JSON.stringify({
      bench: 'release.writer', rows: n, rowsPerSec: Math.round(n / (ms / 1000)), peakRssGrowthMiB: +((peak - rss0) / 2 ** 20).toFixed(1),
      baseline: 'jsonl-only', baselineRowsPerSec: Math.round(n / (baseMs / 1000)), ratio: +(baseMs / ms).toFixed(3),
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  benchLayer1();
  await benchWriter(20_000);
  await benchWriter(200_000);
}

void main();
