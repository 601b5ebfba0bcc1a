import { test } from 'node:test';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { ConfigError, configToEnv, loadConfig, replaceSettingsTable, SETTINGS } from '../../src/clients/config';
import { createLogger } from '../../src/clients/logger';
import { validateProjectDefinition } from '../../src/projects/definition';
import { ProjectSpecError } from '../../src/qc/compliance';
import { canonicalJson } from '../../src/util/canonical-json';
import { CONFLICTS, DEFECTS, generateDemoLines } from '../../src/demo/dataset';
import { parseLine } from '../../src/ingest/envelope';

test('config defaults and validation errors name the variable', () => {
  const cfg = loadConfig({});
  assert.equal(cfg.temporal.address, '127.0.0.1:7233');
  assert.equal(cfg.taskQueues.cpu, 'qc-cpu');
  assert.equal(cfg.databaseUrl, undefined);
  assert.throws(() => loadConfig({ MINIO_PORT: 'abc' }), (e: Error) => e instanceof ConfigError && /MINIO_PORT/.test(e.message));
  assert.throws(() => loadConfig({ QCFLOW_LOG_LEVEL: 'loud' }), /QCFLOW_LOG_LEVEL/);
  assert.throws(() => loadConfig({ MINIO_SECRET_KEY: 'short' }), /MINIO_SECRET_KEY/);
  assert.throws(() => loadConfig({ TEMPORAL_ADDRESS: 'nohost' }), /TEMPORAL_ADDRESS/);
  assert.throws(() => loadConfig({ MINIO_USE_SSL: 'maybe' }), /MINIO_USE_SSL/);
});

test('every config variable read by loadConfig is documented in SETTINGS', async () => {
  const { readFileSync } = await import('node:fs');
  const src = readFileSync(require.resolve('../../src/clients/config'), 'utf8');
  const read = new Set([...src.matchAll(/\(env, '([A-Z_]+)'|\benv\.([A-Z_]+)/g)].map((m) => (m[1] ?? m[2])!));
  assert.ok(read.has('DATABASE_URL') && read.has('QCFLOW_TOKEN'), 'direct reads are seen too');
  const documented = new Set(SETTINGS.map((s) => s.env));
  assert.deepEqual([...read].filter((v) => !documented.has(v)), []);
});

test('the settings table is what loadConfig uses: unset variables take its defaults, and configToEnv round-trips through loadConfig', () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-config-'));
  const cfg = loadConfig({ QCFLOW_STATE_DIR: stateDir });
  for (const x of SETTINGS) {
    if (x.int) assert.ok(/^\(.*\)$/.test(x.default) || (Number(x.default) >= x.int[0] && Number(x.default) <= x.int[1]), `${x.env}'s default lies in its range`);
    if (!x.child || /^\(.*\)$|^[.~]\//.test(x.default)) continue;
    assert.equal(x.child(cfg, 'postgres://db'), x.default, `${x.env} unset`);
  }
  assert.equal(cfg.binCacheDir, path.join(os.homedir(), '.cache', 'qcflow', 'bin'));
  const custom = loadConfig({ QCFLOW_STATE_DIR: stateDir, MINIO_PORT: '9100', MINIO_USE_SSL: 'yes', QCFLOW_ORT_PROVIDERS: 'cuda, cpu', QCFLOW_SESSION_CACHE_MAX_BYTES: '1000', QCFLOW_START_TIMEOUT_S: '7' });
  const env = configToEnv(custom, 'postgres://db');
  assert.equal(env.DATABASE_URL, 'postgres://db');
  assert.deepEqual(loadConfig(env), { ...custom, databaseUrl: 'postgres://db' });
  assert.throws(() => loadConfig({ QCFLOW_INFERENCE_BATCH_SIZE: '0' }), /QCFLOW_INFERENCE_BATCH_SIZE="0" must be an integer in \[1, 65536\]/);
});

test('project definitions: ids, ontology groups and rules are checked', () => {
  const ok = validateProjectDefinition({ id: 'demo', jsonSchema: { type: 'object' }, ontology: { classes: ['car', 'truck'], exclusive: [['car', 'truck']] } });
  assert.equal(ok.id, 'demo');
  assert.throws(() => validateProjectDefinition({ id: 'Bad Name' }), ProjectSpecError);
  assert.throws(() => validateProjectDefinition({ id: 'p', ontology: { classes: ['a'], exclusive: [['a', 'zzz']] } }), /exclusive\[0\].*zzz/);
  assert.throws(() => validateProjectDefinition({ id: 'p', regexRules: [{ name: 'x', pointer: '/a', pattern: '[' }] }), /regexRules\[0\]/);
  assert.throws(() => validateProjectDefinition({ id: 'p', jsonSchema: [] }), /jsonSchema/);
});

test('project definitions: QC policy and plugin configs are validated with the field named', () => {
  const p = validateProjectDefinition({ id: 'p', qcPolicy: { fusion: { acceptThreshold: 0.7 }, plugins: [{ id: 'image-quality', config: { minSharpness: 50 } }] } });
  assert.deepEqual(p.qcPolicy, { fusion: { acceptThreshold: 0.7 }, plugins: [{ id: 'image-quality', config: { minSharpness: 50 } }] });
  assert.throws(() => validateProjectDefinition({ id: 'p', qcPolicy: { auditShare: 2 } }), /\/qcPolicy\/auditShare must be <= 1/);
  assert.throws(() => validateProjectDefinition({ id: 'p', qcPolicy: { fusion: { acceptThreshold: 0.3, reviewThreshold: 0.5 } } }), /reviewThreshold/);
  assert.throws(() => validateProjectDefinition({ id: 'p', qcPolicy: { plugins: [{ id: 'nope' }] } }), /plugins\/0\/id: unknown plugin "nope"; known: sequence-labels, image-quality/);
  assert.throws(() => validateProjectDefinition({ id: 'p', qcPolicy: { plugins: [{ id: 'sequence-labels', config: { scheme: 'IOB9' } }] } }), /plugins\/sequence-labels\/config\/scheme/);
  assert.throws(() => validateProjectDefinition({ id: 'p', ontology: { multiLabel: 'yes' } }), /ontology.multiLabel/);
  assert.throws(() => validateProjectDefinition({ id: 'p', ontology: { entities: [''] } }), /ontology.entities/);
});

test('canonical JSON sorts keys at every depth and drops undefined', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: undefined } }), '{"a":{"d":[2,{"y":2,"z":1}]},"b":1}');
});

test('demo dataset is deterministic and injects every defect kind', () => {
  const a = generateDemoLines(500);
  const b = generateDemoLines(500);
  assert.deepEqual(a, b);
  const kinds = new Set(a.map((l) => l.defect).filter(Boolean));
  assert.deepEqual([...kinds].sort(), [...DEFECTS].sort());
  assert.deepEqual([...new Set(a.map((l) => l.conflict).filter(Boolean))].sort(), [...CONFLICTS].sort());
  // Unanimous mislabels: every annotator gives the same class, and it is not the one the text's words say.
  const mislabeled = a.filter((l) => l.mislabeled);
  assert.ok(mislabeled.length >= 10 && mislabeled.length <= 20, String(mislabeled.length));
  for (const l of mislabeled) {
    const s = JSON.parse(l.line) as { payload: { rating: number }; annotations: Array<{ labels: { classes: string[] } }> };
    const truth = s.payload.rating === 5 ? 'positive' : s.payload.rating === 1 ? 'negative' : 'neutral';
    assert.equal(new Set(s.annotations.map((x) => x.labels.classes[0])).size, 1);
    assert.notEqual(s.annotations[0]!.labels.classes[0], truth);
  }
  // Envelope-level defects never parse as samples; payload-level ones do (layer 1 catches them later).
  for (const l of a.filter((x) => x.defect === 'malformed-json' || x.defect === 'missing-external-id' || x.defect === 'bad-box')) {
    assert.equal(parseLine(l.line).ok, false);
  }
});

test('the logger never writes Temporal task tokens', () => {
  const chunks: string[] = [];
  const log = createLogger('info', { write: (s: string) => { chunks.push(s); } });
  log.warn({ taskToken: 'c2VjcmV0', activityType: 'stageBatch' }, 'Activity failed');
  const out = chunks.join('');
  assert.match(out, /stageBatch/);
  assert.ok(!out.includes('c2VjcmV0'), out);
});

test('the Configuration table (docs/operations.md) is the one generated from SETTINGS: run npm run docs:config after changing a setting', () => {
  const doc = readFileSync(path.join(__dirname, '..', '..', 'docs', 'operations.md'), 'utf8');
  assert.equal(replaceSettingsTable(doc), doc);
  assert.ok(SETTINGS.every((s) => doc.includes(`| \`${s.env}\` |`)));
  // The check can fail: a setting added to the list but not to the page.
  assert.notEqual(replaceSettingsTable(doc.replace('| `QCFLOW_TOKEN` |', '| `QCFLOW_TOKEN_OLD` |')), doc.replace('| `QCFLOW_TOKEN` |', '| `QCFLOW_TOKEN_OLD` |'));
});

test('MinIO keys come from the environment, else from the state dir\'s generated ones, else the old defaults', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-cfg-'));
  assert.equal(loadConfig({ QCFLOW_STATE_DIR: dir }).minio.accessKey, 'qcflow');
  writeFileSync(path.join(dir, 'minio-credentials.json'), JSON.stringify({ accessKey: 'qcflow-1234', secretKey: 'generated-secret-xyz' }));
  assert.deepEqual([loadConfig({ QCFLOW_STATE_DIR: dir }).minio.accessKey, loadConfig({ QCFLOW_STATE_DIR: dir }).minio.secretKey], ['qcflow-1234', 'generated-secret-xyz']);
  assert.equal(loadConfig({ QCFLOW_STATE_DIR: dir, MINIO_ACCESS_KEY: 'mine', MINIO_SECRET_KEY: 'mine-secret' }).minio.accessKey, 'mine');
});
