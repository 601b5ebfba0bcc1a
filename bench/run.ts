/**
 * `npm run bench`: JSON lines, each comparing a qcflow code path with a baseline measured in the same run.
 *  - layer1: checkCompliance (schema + regex rules + findings) vs bare ajv validate of the same payloads.
 *  - release-writer: JSONL + Arrow chunked writer vs writing JSONL alone; plus peak RSS growth, which
 *    must stay flat as the release grows because the writer holds one chunk at a time.
 *  - layers2+5: checkConsistency + fusion + disposition on 100k samples × 3 annotators × 5 boxes, single
 *    thread, vs a loop that only JSON.parses the same lines (target: ≥ 10,000 samples/s of layer time).
 *  - quantize: per fixture model and method, quantization time, weight size ratio and latency vs fp32.
 *  - layer3 and layer4 on an ephemeral stack: see bench/stack-benches.ts.
 *  - qc: a synthetic crowd with known truth end to end through Temporal, beside cleanlab: bench/qc-bench.ts.
 *  - rollout: A/A peeking, power and flag evaluation of the gray-release engine: bench/rollout.ts.
 *  - queue: the review queue's page, counts and claim at 1k, 10k and 100k open tasks: bench/queue.ts.
 *  - review-real: QC and the review page on a real photo with 18 people's boxes (QCFLOW_REAL_BOXES): bench/review-real.ts.
 */
import { mkdtempSync, readFileSync, rmSync, createWriteStream } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateDemoLines } from '../src/demo/dataset';
import { createAjv, parseLine, type IngestSample } from '../src/ingest/envelope';
import { checkCompliance, compileCompliance, type RegexRule } from '../src/qc/compliance';
import { jsonlLine, ReleaseFileWriter, type ReleaseRow } from '../src/release/writers';
import { prng } from '../src/demo/dataset';
import { checkConsistency, objectAccuracies } from '../src/qc/consistency';
import { batchThresholds, decideByRisk } from '../src/qc/disposition';
import { DEFAULT_POLICY } from '../src/qc/policy';
import type { Ontology } from '../src/projects/ontology';
import { stackBenches } from './stack-benches';
import { quantizeBenches } from './quantize-benches';
import { qcBench } from './qc-bench';
import { faultsBench } from './faults';
import { realCrowdBench } from './real-crowd';
import { quantizeRealBench } from './quantize-real';
import { flagThroughput, rolloutBench } from './rollout';
import { queueBench } from './queue';
import { reviewRealBench } from './review-real';
import { e2eBench } from './e2e';
import { heapBench } from './heap';

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
  const samples = generateDemoLines(5000).map((l) => parseLine(l.line)).flatMap<IngestSample>((p) => (p.ok ? [p.sample] : []));
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
    // RSS keeps what V8 once took; heap in use plus array buffers is what the writer holds at its worst.
    const held = (): number => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    const held0 = held();
    let heldPeak = held0;
    const t0 = process.hrtime.bigint();
    const w = new ReleaseFileWriter(path.join(dir, 'd.jsonl'), path.join(dir, 'd.arrow'));
    for (let i = 0; i < n; i += 1000) {
      await w.writeChunk(Array.from({ length: Math.min(1000, n - i) }, (_, k) => row(i + k)));
      peak = Math.max(peak, process.memoryUsage().rss);
      heldPeak = Math.max(heldPeak, held());
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
      bench: 'release.writer', rows: n, rowsPerSec: Math.round(n / (ms / 1000)), peakRssGrowthMiB: +((peak - rss0) / 2 ** 20).toFixed(1), peakHeldGrowthMiB: +((heldPeak - held0) / 2 ** 20).toFixed(1),
      baseline: 'jsonl-only', baselineRowsPerSec: Math.round(n / (baseMs / 1000)), ratio: +(baseMs / ms).toFixed(3),
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Lines of `n` samples, each with 3 annotators drawing 5 jittered boxes; about 1 in 10 has a dissenting class. */
function boxLines(n: number): string[] {
  const rnd = prng(42);
  const classes = ['car', 'truck', 'person', 'bike'];
  return Array.from({ length: n }, (_, i) => {
    const objects = Array.from({ length: 5 }, (_, k) => ({ x: k * 120 + rnd() * 20, y: rnd() * 200, w: 80 + rnd() * 20, h: 80 + rnd() * 20, class: classes[k % 4]! }));
    const annotations = [1, 2, 3].map((a) => ({
      annotator: `ann-${a}`,
      labels: {
        classes: ['street'],
        boxes: objects.map((o, k) => ({ x: o.x + rnd() * 3, y: o.y + rnd() * 3, w: o.w, h: o.h, class: a === 3 && k === 0 && i % 10 === 0 ? 'bike' : o.class })),
      },
    }));
    return JSON.stringify({ externalId: `b-${i}`, payload: { image: `img-${i}.jpg` }, annotations });
  });
}

function benchLayers2and5(n: number): void {
  const lines = boxLines(n);
  const ontology: Ontology = { classes: ['street', 'car', 'truck', 'person', 'bike'], exclusive: [['car', 'truck']] };
  const policy = DEFAULT_POLICY;
  const t0 = process.hrtime.bigint();
  const parsed = lines.map((l) => JSON.parse(l) as IngestSample);
  const parseMs = Number(process.hrtime.bigint() - t0) / 1e6;
  let conflicts = 0;
  let accepted = 0;
  const t1 = process.hrtime.bigint();
  // The default policy (fusion.mode = risk): per-sample risk, the batch threshold, then each decision.
  // As runConsistency does per batch: the annotators' object accuracies first, then every sample.
  const objects = objectAccuracies(parsed.map((s) => ({ annotations: s.annotations ?? [], payload: s.payload })), ontology, policy.layer2);
  const results = parsed.map((s) => checkConsistency({ annotations: s.annotations ?? [], payload: s.payload, ontology, policy: policy.layer2, weights: {}, objectWeights: objects.objects, objectClassWeights: objects.classes, objectBoundsWeights: objects.bounds }));
  const threshold = batchThresholds(results.filter((r) => r.blocking.length === 0).map((r) => r.risk), policy.fusion.risk);
  for (let i = 0; i < parsed.length; i++) {
    const r = results[i]!;
    const d = decideByRisk({ sampleId: parsed[i]!.externalId, layer1Passed: true, blocking: r.blocking, risk: r.risk, threshold, policy });
    if (!r.passed) conflicts++;
    if (d.disposition === 'accepted') accepted++;
  }
  const layerMs = Number(process.hrtime.bigint() - t1) / 1e6;
  const layersPerSec = Math.round(n / (layerMs / 1000));
  console.log(JSON.stringify({
    bench: 'layers2+5.consistency+fusion', samples: n, annotators: 3, boxesPerAnnotation: 5, conflicts, accepted,
    layerSamplesPerSec: layersPerSec, target: 10_000, meetsTarget: layersPerSec >= 10_000,
    baseline: 'JSON.parse only', baselineSamplesPerSec: Math.round(n / (parseMs / 1000)), ratio: +(parseMs / layerMs).toFixed(3),
  }));
}

async function main(): Promise<void> {
  benchLayer1();
  await benchWriter(20_000);
  await benchWriter(200_000);
  // Last: its 100k parsed samples would otherwise inflate the writer's RSS readings.
  benchLayers2and5(100_000);
  await quantizeBenches();
  await quantizeRealBench();
  await stackBenches();
  await qcBench();
  await faultsBench();
}

const only = process.argv[2];
if (only === 'layers') benchLayers2and5(100_000);
else if (only === 'layer1') benchLayer1();
else if (only === 'writer') void benchWriter(20_000).then(() => benchWriter(200_000)).then(() => process.exit(0));
else if (only === 'stack') void stackBenches().then(() => process.exit(0));
else if (only === 'quantize') void quantizeBenches().then(() => process.exit(0));
else if (only === 'quantize-real') {
  const list = (flag: string): string[] => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1]!.split(',') : []);
  void quantizeRealBench(list('--models'), list('--methods')).then(() => process.exit(0));
}
else if (only === 'qc') void qcBench().then(() => process.exit(0));
else if (only === 'faults') void faultsBench().then(() => process.exit(0));
else if (only === 'real-crowd') realCrowdBench();
else if (only === 'e2e') {
  const at = process.argv.indexOf('--samples');
  void e2eBench(at > 0 ? Number(process.argv[at + 1]) : 100_000).then(() => process.exit(0));
} else if (only === 'flags') void flagThroughput().then(() => process.exit(0));
else if (only === 'heap') void heapBench().then(() => process.exit(0));
else if (only === 'rollout') void rolloutBench().then(() => process.exit(0));
else if (only === 'queue') void queueBench().then(() => process.exit(0));
else if (only === 'review-real') void reviewRealBench().then(() => process.exit(0));
else void main().then(() => process.exit(0));
