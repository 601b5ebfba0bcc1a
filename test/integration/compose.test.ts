import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'yaml';
import { REPO } from './helpers';

const compose = (file: string, ...args: string[]) =>
  spawnSync('docker-compose', ['-f', file, ...args], { encoding: 'utf8', cwd: path.dirname(file) });

test('docker-compose.temporal.yml validates: every worker and the review server, health checks, limits, no port used twice', () => {
  const file = path.join(REPO, 'docker-compose.temporal.yml');
  const r = compose(file, 'config', '-q');
  assert.equal(r.status, 0, r.stderr);
  // The file as compose resolves it (anchors merged), so the checks see what would run.
  const resolved = parse(compose(file, 'config').stdout) as { services: Record<string, { healthcheck?: unknown; mem_limit?: unknown; cpus?: unknown; ports?: Array<string | { published: number }>; scale?: number }> };
  const services = resolved.services;
  assert.deepEqual(Object.keys(services).sort(), [
    'minio', 'postgresql', 'qcflow-migrate', 'qcflow-review-server', 'qcflow-worker-cpu', 'qcflow-worker-inference', 'qcflow-worker-models', 'qcflow-worker-review',
    'temporal', 'temporal-setup', 'temporal-ui',
  ]);
  const oneShots = ['qcflow-migrate', 'temporal-setup'];
  for (const [name, svc] of Object.entries(services)) {
    if (oneShots.includes(name)) continue;
    assert.ok(svc.healthcheck, `${name} has a health check`);
    assert.ok(svc.mem_limit && svc.cpus, `${name} has resource limits`);
  }
  assert.equal(services['qcflow-worker-cpu']!.scale, 2, 'two qc-cpu worker processes');
  const published = Object.values(services).flatMap((s) => (s.ports ?? []).map((p) => (typeof p === 'string' ? p.split(':')[0] : String(p.published))));
  assert.equal(new Set(published).size, published.length, `no host port published twice: ${published.join(', ')}`);
  assert.ok(published.includes('8080') && published.includes('8233'), 'the review server keeps 8080, the UI moved to 8233');
});

test('the validation really rejects a broken compose file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-compose-'));
  mkdirSync(path.join(dir, 'deploy'));
  const broken = readFileSync(path.join(REPO, 'docker-compose.temporal.yml'), 'utf8').replace('condition: service_healthy', 'condition: whenever');
  writeFileSync(path.join(dir, 'Dockerfile'), 'FROM scratch\n');
  const file = path.join(dir, 'docker-compose.yml');
  writeFileSync(file, broken);
  assert.notEqual(compose(file, 'config', '-q').status, 0);
});
