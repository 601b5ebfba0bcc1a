import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig, SETTINGS } from '../../src/clients/config';
import { getLogger } from '../../src/clients/logger';
import { ensureProgram } from '../../src/infra/binaries';
import { REPO } from './helpers';

const K8S = path.join(REPO, 'deploy', 'k8s');
const KUBERNETES = '1.33.0';

/**
 * Kubernetes' JSON schemas for kubeconform, made offline from PyPI's kubernetes-validate (which ships them
 * for every minor version): each kind's schema with the shared definitions inlined, as kubeconform wants.
 */
function schemaDir(cacheRoot: string): string {
  const dir = path.join(cacheRoot, `k8s-schemas-${KUBERNETES}`);
  if (existsSync(path.join(dir, 'deployment-apps-v1.json'))) return dir;
  const wheelDir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-kv-'));
  const pip = spawnSync('python3', ['-m', 'pip', 'download', '--no-deps', '-q', '-d', wheelDir, 'kubernetes-validate==1.37.0'], { encoding: 'utf8' });
  assert.equal(pip.status, 0, `pip download kubernetes-validate failed: ${pip.stderr}`);
  const wheel = path.join(wheelDir, readdirSync(wheelDir).find((f) => f.endsWith('.whl'))!);
  mkdirSync(dir, { recursive: true });
  const py = `
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); prefix = 'kubernetes_validate/kubernetes-json-schema/v${KUBERNETES}-local-strict/'
defs = json.loads(z.read(prefix + '_definitions.json'))['$defs']
for name in z.namelist():
    if not name.startswith(prefix) or name.endswith('_definitions.json'): continue
    text = z.read(name).decode().replace('"/api/_definitions.json#/$defs/', '"#/$defs/')
    schema = json.loads(text); schema['$defs'] = defs
    open(sys.argv[2] + '/' + name[len(prefix):], 'w').write(json.dumps(schema))
`;
  const r = spawnSync('python3', ['-c', py, wheel, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return dir;
}

async function kubeconform(files: string[]): Promise<{ status: number | null; out: string }> {
  const cfg = loadConfig();
  const bin = await ensureProgram('kubeconform', cfg.binCacheDir, getLogger(cfg, 'test'));
  const schemas = schemaDir(path.dirname(cfg.binCacheDir));
  const r = spawnSync(bin, ['-strict', '-summary', '-kubernetes-version', KUBERNETES, '-skip', 'Kustomization',
    '-schema-location', path.join(schemas, '{{ .ResourceKind }}{{ .KindSuffix }}.json'), ...files], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

const manifests = (): string[] => readdirSync(K8S).filter((f) => f.endsWith('.yaml')).map((f) => path.join(K8S, f));

test('deploy/k8s validates with kubeconform (strict, Kubernetes 1.33 schemas)', async () => {
  const r = await kubeconform(manifests());
  assert.equal(r.status, 0, r.out);
  // Every resource was checked against a schema; only the Kustomization (not an API object) is skipped.
  const resources = manifests().map((f) => readFileSync(f, 'utf8').match(/^kind: /gm)?.length ?? 0).reduce((a, b) => a + b, 0);
  assert.match(r.out, new RegExp(`Valid: ${resources - 1}, Invalid: 0, Errors: 0, Skipped: 1`), r.out);
});

test('kubeconform really rejects a wrong manifest (a probe field misspelt)', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-k8s-'));
  const broken = readFileSync(path.join(K8S, 'worker-cpu.yaml'), 'utf8').replace('periodSeconds: 10', 'periodSecond: 10');
  writeFileSync(path.join(dir, 'worker-cpu.yaml'), broken);
  const r = await kubeconform([path.join(dir, 'worker-cpu.yaml')]);
  assert.notEqual(r.status, 0);
  assert.match(r.out, /periodSecond/);
});

test('a Deployment per task queue with probes and limits; the HPAs scale Deployments that exist; ConfigMap keys are real settings', () => {
  const text = manifests().map((f) => readFileSync(f, 'utf8')).join('\n---\n');
  const docs = text.split(/^---$/m);
  const deployments = docs.filter((d) => /^kind: Deployment$/m.test(d));
  const names = deployments.map((d) => /^ {2}name: (\S+)$/m.exec(d)![1]);
  assert.deepEqual(names.sort(), ['qcflow-review-server', 'qcflow-worker-cpu', 'qcflow-worker-inference', 'qcflow-worker-models', 'qcflow-worker-review']);
  for (const queue of ['qc-cpu', 'qc-inference', 'qc-review', 'models']) assert.ok(deployments.some((d) => d.includes(`qcflow/task-queue: ${queue}`)), queue);
  for (const d of deployments) {
    assert.match(d, /readinessProbe:\n\s+httpGet: \{ path: \/health, port: metrics \}/);
    assert.match(d, /livenessProbe:/);
    assert.match(d, /limits: \{ cpu: "?[\d.m]+"?, memory: \w+ \}/);
  }
  for (const target of text.matchAll(/scaleTargetRef: \{ apiVersion: apps\/v1, kind: Deployment, name: (\S+) \}/g)) assert.ok(names.includes(target[1]), target[1]);
  const known = new Set(SETTINGS.map((s) => s.env));
  const config = readFileSync(path.join(K8S, 'configmap.yaml'), 'utf8');
  const keys = [...config.matchAll(/^ {2}([A-Z_]+):/gm)].map((m) => m[1]!);
  assert.ok(keys.length >= 10);
  for (const k of keys) assert.ok(known.has(k), `${k} is not a qcflow setting`);
  // The backlog metric the HPAs scale on is one the workers export.
  assert.match(readFileSync(path.join(REPO, 'src', 'observability', 'collectors.ts'), 'utf8'), /'qcflow_task_queue_backlog'/);
});
