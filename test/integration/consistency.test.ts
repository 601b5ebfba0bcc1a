import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ingestFile } from '../../src/cli/ingest';
import { connectServices, formatResamples, resamples, status } from '../../src/cli/commands';
import { inAuditShare } from '../../src/qc/disposition';
import { registerPlugin } from '../../src/qc/plugins/registry';
import { batchResamplesQuery, workflowIds, type BatchResamples } from '../../workflows/definitions';
import { datasetRelease } from '../../workflows';
import { createTestProject, harness, readRelease, uid, type Harness } from './helpers';
import type { Annotation } from '../../src/ingest/envelope';

// A plugin that always throws: its failure must be recorded on the batch without failing the other checks.
registerPlugin({ id: 'test-always-throws', description: 'throws', layer: 2, parseConfig: (c) => c, run: () => { throw new Error('plugin exploded'); } });

let h: Harness;
before(async () => {
  h = await harness({ worker: true });
});
after(() => h.close());

const ONTOLOGY = { classes: ['cat', 'dog', 'car', 'truck'], exclusive: [['car', 'truck']], attributes: { color: ['red', 'blue', 'other'] }, entities: ['PER', 'LOC'] };

function line(id: string, labels: Array<Annotation['labels']>, text = `text of ${id}`): string {
  return JSON.stringify({ externalId: id, payload: { text, lang: 'en' }, annotations: labels.map((l, i) => ({ annotator: `ann-${i + 1}`, labels: l })) });
}

async function ingest(project: string, lines: string[]) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-l2-'));
  const file = path.join(dir, 'in.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  return ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 1000, wait: true });
}

async function outcome(project: string): Promise<Map<string, { status: string; l2: string[]; l5: string[]; reason: string }>> {
  const { rows } = await h.pool.query<{ external_id: string; status: string; l2: Array<{ rule: string }> | null; l5: Array<{ rule: string }>; reason: string }>(
    `SELECT s.external_id, s.status, q2.findings AS l2, q5.findings AS l5, q5.details->>'reason' AS reason
     FROM samples s LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2 JOIN qc_results q5 ON q5.sample_id = s.id AND q5.layer = 5
     WHERE s.project_id = $1`, [project],
  );
  return new Map(rows.map((r) => [r.external_id, { status: r.status, l2: [...new Set((r.l2 ?? []).map((f) => f.rule))].sort(), l5: r.l5.map((f) => f.rule).sort(), reason: r.reason }]));
}

const box = (x: number, cls: string, attributes?: Record<string, string>) => ({ x, y: 0, w: 100, h: 100, class: cls, ...(attributes ? { attributes } : {}) });

test('linear fusion (the first-wave policy): a batch with injected conflicts ends with the expected statuses and findings; kappa, alpha and reliability are stored', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { fusion: { mode: 'linear' }, plugins: [{ id: 'sequence-labels' }, { id: 'test-always-throws' }] } });
  const agreeing = Array.from({ length: 30 }, (_, i) => line(`ok-${i}`, [{ classes: [i % 2 ? 'cat' : 'dog'] }, { classes: [i % 2 ? 'cat' : 'dog'] }, { classes: [i % 2 ? 'cat' : 'dog'] }]));
  const r = await ingest(project, [
    ...agreeing,
    line('class', [{ classes: ['cat'] }, { classes: ['cat'] }, { classes: ['dog'] }]),
    line('exclusive', [{ classes: ['car'] }, { classes: ['truck'] }]),
    line('missing', [{ boxes: [box(0, 'car'), box(500, 'dog')] }, { boxes: [box(0, 'car')] }]),
    line('geometry', [{ boxes: [box(0, 'car')] }, { boxes: [box(20, 'car')] }]),
    line('box-class', [{ boxes: [box(0, 'car')] }, { boxes: [box(2, 'truck')] }]),
    line('attr', [{ attributes: { color: 'red' } }, { attributes: { color: 'blue' } }]),
    line('attr-value', [{ attributes: { color: 'pink' } }]),
    line('tags', [{ tags: ['B-PER', 'I-PER', 'O'] }, { tags: ['O', 'I-PER', 'O'] }], 'Ada Lovelace wrote'),
    line('span', [{ spans: [{ start: 0, end: 12, label: 'PER' }] }, { spans: [{ start: 0, end: 12, label: 'LOC' }] }], 'Ada Lovelace wrote'),
    line('single-unknown', [{ classes: ['unicorn'] }]),
    JSON.stringify({ externalId: 'l1-fail', payload: { text: 'ssn 078-05-1120', lang: 'en' }, annotations: [{ annotator: 'ann-1', labels: { classes: ['cat'] } }, { annotator: 'ann-2', labels: { classes: ['dog'] } }] }),
  ]);
  assert.deepEqual(r.failedBatches, []);
  assert.equal(r.counts.accepted, 30);
  assert.equal(r.counts.review, 10);
  assert.equal(r.counts.rejected, 1);

  const o = await outcome(project);
  const expect: Record<string, [string, string[]]> = {
    class: ['review', ['class_conflict']],
    exclusive: ['review', ['exclusive_conflict']],
    missing: ['review', ['missing_object']],
    geometry: ['review', ['geometry_conflict']],
    'box-class': ['review', ['exclusive_conflict']],
    attr: ['review', ['attribute_conflict']],
    'attr-value': ['review', ['attribute_value']],
    tags: ['review', ['invalid_transition', 'tag_conflict']],
    span: ['review', ['class_conflict']],
    'single-unknown': ['review', ['unknown_class']],
  };
  for (const [id, [status, l2]] of Object.entries(expect)) {
    assert.deepEqual([o.get(id)!.status, o.get(id)!.l2, o.get(id)!.reason], [status, l2, 'layer2_conflict'], id);
  }
  assert.deepEqual([o.get('l1-fail')!.status, o.get('l1-fail')!.reason], ['rejected', 'layer1_failed']);
  assert.equal(o.get('l1-fail')!.l2.length, 0);
  // No layer-3 model: score and uncertainty are stand-ins; layer 4 ran, so stability is real (1: too little history to compare).
  assert.deepEqual([o.get('ok-1')!.status, o.get('ok-1')!.reason, o.get('ok-1')!.l5], ['accepted', 'confident', ['fusion.input_absent', 'fusion.input_absent']]);

  // The conflicting annotators are named, and the fusion inputs and weights are stored for the reviewer.
  const cls = await h.pool.query<{ findings: Array<{ annotators: string[]; message: string }> }>(
    `SELECT q.findings FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 2 WHERE s.project_id = $1 AND s.external_id = 'class'`, [project]);
  assert.deepEqual(cls.rows[0]!.findings[0]!.annotators, ['ann-1', 'ann-2', 'ann-3']);
  const fused = await h.pool.query<{ details: { fusion: { weights: Record<string, number>; inputs: Record<string, number> } } }>(
    `SELECT q.details FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 5 WHERE s.project_id = $1 AND s.external_id = 'ok-1'`, [project]);
  assert.deepEqual(fused.rows[0]!.details.fusion.weights, { score: 0.6, uncertainty: -0.25, stability: 0.15 });
  assert.deepEqual(fused.rows[0]!.details.fusion.inputs, { score: 1, uncertainty: 0, stability: 1 });

  const batch = await h.pool.query<{ agreement: { fleissKappa: number; krippendorffAlpha: number; conflicts: number; annotators: Record<string, { rate: number; reliability: number }>; pluginErrors: Array<{ plugin: string }> } }>(
    'SELECT agreement FROM batches WHERE project_id = $1', [project]);
  const ag = batch.rows[0]!.agreement;
  assert.ok(ag.fleissKappa > 0.7 && ag.fleissKappa < 1, `kappa ${ag.fleissKappa}`);
  assert.ok(ag.krippendorffAlpha > 0.7 && ag.krippendorffAlpha < 1, `alpha ${ag.krippendorffAlpha}`);
  assert.equal(ag.conflicts, 10);
  assert.ok(ag.annotators['ann-3']!.rate < 1 && ag.annotators['ann-1']!.reliability > 0.8);
  assert.deepEqual(ag.pluginErrors.map((e) => e.plugin), ['test-always-throws']);
  const bf = await h.pool.query<{ rule: string; message: string }>('SELECT rule, message FROM batch_findings WHERE project_id = $1', [project]);
  assert.deepEqual(bf.rows.map((x) => x.rule), ['plugin.error']);
  assert.match(bf.rows[0]!.message, /plugin exploded/);
  const rel = await h.pool.query<{ annotator: string }>('SELECT annotator FROM annotator_reliability WHERE project_id = $1 ORDER BY annotator', [project]);
  assert.deepEqual(rel.rows.map((x) => x.annotator), ['ann-1', 'ann-2', 'ann-3']);
  const agr = await h.pool.query<{ n: string }>('SELECT count(*) AS n FROM annotator_agreement WHERE project_id = $1', [project]);
  assert.equal(Number(agr.rows[0]!.n), 3);

  // Released rows carry the layer-2 consensus and the layer-5 confidence next to the raw annotations.
  await h.client.workflow.execute(datasetRelease, { workflowId: workflowIds.release(project, 'v1'), taskQueue: h.cfg.taskQueues.cpu, args: [{ project, version: 'v1' }] });
  const released = await readRelease(h.store, project, 'v1');
  const rows = released.jsonl.trim().split('\n').map((l) => JSON.parse(l) as { externalId: string; qc: Record<string, { passed: boolean; score: number; consensus?: { classes: { classes: string[] } } }> });
  assert.equal(rows.length, 30);
  const ok1 = rows.find((x) => x.externalId === 'ok-1')!;
  assert.deepEqual(ok1.qc.layer2!.consensus!.classes.classes, ['cat']);
  assert.equal(ok1.qc.layer5!.score, 0.75);
});

test('the default policy decides by the probability that the labels are wrong: soft disagreement is accepted within the error budget, ontology breaks go to a person, uninformative labels are resampled', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: { ...ONTOLOGY, classes: ['cat', 'dog', 'bird', 'car', 'truck'] } });
  const agree = Array.from({ length: 60 }, (_, i) => line(`agree-${i}`, [{ classes: ['cat'] }, { classes: ['cat'] }, { classes: ['cat'] }]));
  const r = await ingest(project, [
    ...agree,
    // Three boxes a few pixels apart, one annotator with another colour: settled by the vote.
    line('jitter-attr', [{ classes: ['car'], boxes: [box(0, 'car', { color: 'red' })] }, { classes: ['car'], boxes: [box(3, 'car', { color: 'red' })] }, { classes: ['car'], boxes: [box(1, 'car', { color: 'blue' })] }]),
    line('split-3', [{ classes: ['cat'] }, { classes: ['dog'] }, { classes: ['bird'] }]),
    line('unknown', [{ classes: ['unicorn'] }, { classes: ['cat'] }, { classes: ['cat'] }]),
  ]);
  assert.deepEqual(r.failedBatches, []);
  const o = await outcome(project);
  assert.deepEqual([o.get('agree-0')!.status, o.get('agree-0')!.reason], ['accepted', 'confident']);
  assert.deepEqual(o.get('jitter-attr')!.l2, ['attribute_conflict'], 'the dissent is recorded');
  assert.deepEqual([o.get('jitter-attr')!.status, o.get('jitter-attr')!.reason], ['accepted', 'confident']);
  assert.deepEqual([o.get('split-3')!.status, o.get('split-3')!.reason], ['resample', 'low_confidence']);
  assert.deepEqual([o.get('unknown')!.status, o.get('unknown')!.reason], ['review', 'layer2_conflict']);
  assert.equal(r.counts.accepted, 61);

  const d = await h.pool.query<{ external_id: string; details: { mode: string; threshold: { primary: number; attributes: number }; risk: { primary: number; attributes: number; fields: Array<{ field: string; pWrong: number }> } }; findings: Array<{ rule: string; message: string }> }>(
    `SELECT s.external_id, q.details, q.findings FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 5 WHERE s.project_id = $1 AND s.external_id IN ('jitter-attr', 'split-3', 'unknown')`, [project]);
  const by = new Map(d.rows.map((x) => [x.external_id, x]));
  const jitter = by.get('jitter-attr')!.details;
  assert.equal(jitter.mode, 'risk');
  assert.ok(jitter.risk.primary <= jitter.threshold.primary && jitter.threshold.primary <= 0.05, `primary risk ${jitter.risk.primary} under ${jitter.threshold.primary}`);
  // The colour is 2–1: a doubt within the attributes' own budget.
  assert.ok(jitter.risk.attributes > 0.001 && jitter.risk.attributes <= jitter.threshold.attributes, `attribute risk ${jitter.risk.attributes} under ${jitter.threshold.attributes}`);
  assert.ok(jitter.risk.fields.some((f) => f.field === 'boxes:0:attribute:color' && f.pWrong > 0));
  const split = by.get('split-3')!.findings;
  assert.match(split[0]!.message, /^resample: the best class has probability 0\.\d+, under 0\.5; the labels carry too little information to settle/);
  assert.ok(split.some((f) => f.rule === 'risk.field' && /^class: wrong with probability/.test(f.message)), 'the field carrying the risk is named');
  assert.match(by.get('unknown')!.findings[0]!.message, /review: labels break the ontology \(unknown_class\)/);
  const rr = await h.pool.query<{ external_id: string }>('SELECT external_id FROM resample_requests WHERE project_id = $1', [project]);
  assert.deepEqual(rr.rows.map((x) => x.external_id), ['split-3']);
});

test('linear fusion: low confidence resamples (recorded, queryable, sent to the webhook after a retry); the audit share is picked by sample id', async () => {
  const received: Array<{ body: { samples: Array<{ externalId: string; reasons: string[] }> }; key: string | undefined }> = [];
  let calls = 0;
  const server = createServer((req: IncomingMessage, res) => {
    let data = '';
    req.on('data', (c: Buffer) => { data += c.toString(); });
    req.on('end', () => {
      calls++;
      // The first call fails as an overloaded receiver would; the activity must retry.
      if (calls === 1) { res.writeHead(503).end(); return; }
      received.push({ body: JSON.parse(data) as (typeof received)[number]['body'], key: req.headers['idempotency-key'] as string | undefined });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: { classes: ['cat', 'dog', 'bird'] }, qcPolicy: { fusion: { mode: 'linear' }, auditShare: 0.3, resampleWebhook: url, layer2: { minClassAgreement: 0.3 } } });
  const agree = Array.from({ length: 40 }, (_, i) => line(`agree-${i}`, [{ classes: ['cat'] }, { classes: ['cat'] }, { classes: ['cat'] }]));
  const r = await ingest(project, [
    ...agree,
    line('split-3', [{ classes: ['cat'] }, { classes: ['dog'] }, { classes: ['bird'] }]),   // agreement 1/3 → 0.35 → resample
    line('split-2', [{ classes: ['cat'] }, { classes: ['cat'] }, { classes: ['dog'] }]),    // agreement 2/3 → 0.55 → review
  ]);
  const o = await outcome(project);
  assert.deepEqual([o.get('split-3')!.status, o.get('split-3')!.reason], ['resample', 'low_confidence']);
  assert.deepEqual([o.get('split-2')!.status, o.get('split-2')!.reason], ['review', 'uncertain']);

  const ids = await h.pool.query<{ id: string; external_id: string }>(`SELECT id, external_id FROM samples WHERE project_id = $1 AND external_id LIKE 'agree-%'`, [project]);
  const audited = ids.rows.filter((x) => inAuditShare(x.id, 0.3)).map((x) => x.external_id).sort();
  assert.ok(audited.length > 0 && audited.length < 40);
  assert.deepEqual([...o.entries()].filter(([, v]) => v.reason === 'audit').map(([k]) => k).sort(), audited);
  assert.equal(r.counts.accepted, 40 - audited.length);
  assert.equal(r.counts.resample, 1);

  const rr = await h.pool.query<{ external_id: string; reasons: string[]; notified_at: Date | null }>('SELECT external_id, reasons, notified_at FROM resample_requests WHERE project_id = $1', [project]);
  assert.deepEqual(rr.rows.map((x) => x.external_id), ['split-3']);
  assert.match(rr.rows[0]!.reasons[0]!, /resample: confidence 0.350 is below review 0.4/);
  assert.ok(rr.rows[0]!.notified_at);

  assert.equal(calls, 2);
  assert.deepEqual(received.map((x) => x.body.samples.map((s) => s.externalId)), [['split-3']]);
  assert.match(received[0]!.key!, new RegExp(`^${project}/`));

  const handle = h.client.workflow.getHandle(workflowIds.qcBatch(project, r.batches[0]!.batchId));
  const q: BatchResamples = await handle.query(batchResamplesQuery);
  assert.equal(q.total, 1);
  assert.equal(q.webhook, 'notified');
  assert.equal(q.items[0]!.externalId, 'split-3');

  // What an operator sees in the CLI.
  const services = await connectServices(h.cfg);
  try {
    const text = await status(services, project);
    assert.match(text, /reasons\s+audit=\d+ confident=\d+ low_confidence=1 uncertain=1/);
    assert.match(text, /resample\s+1 request\(s\): qcflow resamples --project/);
    assert.match(text, /batch\s+\S+ done kappa=-?\d\.\d{3} alpha=-?\d\.\d{3} conflicts=0/);
    assert.match(formatResamples(await resamples(services, { project, limit: 10 })), /^1 resample request\(s\)\nsplit-3\t\S+\tnotified\tresample: confidence 0\.350/);
  } finally {
    await services.close();
  }
});

test('Dawid–Skene history carries across batches: a careless annotator loses weight for later batches', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: { classes: ['cat', 'dog'] }, qcPolicy: { layer2: { minClassAgreement: 0.5 } } });
  // History: careful-1 and careful-2 always right; careless is right a third of the time.
  const history = Array.from({ length: 90 }, (_, i) => {
    const truth = i % 2 ? 'cat' : 'dog';
    const wrong = truth === 'cat' ? 'dog' : 'cat';
    return JSON.stringify({ externalId: `h-${i}`, payload: { text: `h ${i}`, lang: 'en' }, annotations: [
      { annotator: 'careful-1', labels: { classes: [truth] } }, { annotator: 'careful-2', labels: { classes: [truth] } }, { annotator: 'careless', labels: { classes: [i % 3 === 0 ? truth : wrong] } },
    ] });
  });
  await ingest(project, history);
  const w = await h.pool.query<{ annotator: string; accuracy: number }>('SELECT annotator, accuracy FROM annotator_reliability WHERE project_id = $1 ORDER BY annotator', [project]);
  const acc = Object.fromEntries(w.rows.map((x) => [x.annotator, x.accuracy]));
  assert.ok(acc['careful-1']! > 0.9 && acc.careless! < 0.5, JSON.stringify(acc));
  // Next batch: careless disagrees with careful-1 alone; careful-1's record wins the consensus.
  await ingest(project, [JSON.stringify({ externalId: 'next', payload: { text: 'next', lang: 'en' }, annotations: [
    { annotator: 'careful-1', labels: { classes: ['cat'] } }, { annotator: 'careless', labels: { classes: ['dog'] } },
  ] })]);
  const c = await h.pool.query<{ details: { consensus: { classes: { classes: string[] } } } }>(
    `SELECT q.details FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 2 WHERE s.project_id = $1 AND s.external_id = 'next'`, [project]);
  assert.deepEqual(c.rows[0]!.details.consensus.classes.classes, ['cat']);
  const fits = await h.pool.query<{ n: string }>('SELECT count(*) AS n FROM reliability_fits WHERE project_id = $1', [project]);
  assert.equal(Number(fits.rows[0]!.n), 2);
});

test('image-quality plugin: media is loaded from MinIO, a blurred image goes to review with image.blur', async () => {
  const sharp = (await import('sharp')).default;
  const { prng } = await import('../../src/demo/dataset');
  const rnd = prng(9);
  const noise = Buffer.from(Array.from({ length: 96 * 96 }, () => 40 + Math.floor(rnd() * 176)));
  const crisp = await sharp(noise, { raw: { width: 96, height: 96, channels: 1 } }).png().toBuffer();
  const blurred = await sharp(noise, { raw: { width: 96, height: 96, channels: 1 } }).blur(4).png().toBuffer();
  const project = await createTestProject(h.pool, `t-${uid()}`, { qcPolicy: { plugins: [{ id: 'image-quality' }] } });
  const withImage = (id: string, png: Buffer) => JSON.stringify({
    externalId: id, payload: { text: id, lang: 'en' }, media: [{ contentType: 'image/png', base64: png.toString('base64') }],
    annotations: [{ annotator: 'ann-1', labels: { classes: ['cat'] } }],
  });
  await ingest(project, [withImage('crisp', crisp), withImage('blurred', blurred)]);
  const o = await outcome(project);
  assert.deepEqual([o.get('crisp')!.status, o.get('crisp')!.l2], ['accepted', []]);
  assert.deepEqual([o.get('blurred')!.status, o.get('blurred')!.l2, o.get('blurred')!.reason], ['review', ['image.blur'], 'layer2_conflict']);
});
