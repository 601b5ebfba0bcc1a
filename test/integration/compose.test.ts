import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO } from './helpers';

const compose = (file: string, ...args: string[]) =>
  spawnSync('docker-compose', ['-f', file, ...args], { encoding: 'utf8', cwd: path.dirname(file) });

test('docker-compose.temporal.yml validates and names every service with a health check', () => {
  const file = path.join(REPO, 'docker-compose.temporal.yml');
  const r = compose(file, 'config', '-q');
  assert.equal(r.status, 0, r.stderr);
  const services = compose(file, 'config', '--services').stdout.trim().split('\n').sort();
  assert.deepEqual(services, ['minio', 'postgresql', 'qcflow-worker-cpu', 'temporal', 'temporal-setup', 'temporal-ui']);
  const text = readFileSync(file, 'utf8');
  const healthchecks = text.match(/^\s{4}healthcheck:/gm)?.length ?? 0;
  assert.equal(healthchecks, services.length - 1, 'every long-running service has a health check (temporal-setup is a one-shot job)');
});

test('the validation really rejects a broken compose file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-compose-'));
  mkdirSync(path.join(dir, 'deploy'));
  const broken = readFileSync(path.join(REPO, 'docker-compose.temporal.yml'), 'utf8').replace('condition: service_healthy', 'condition: whenever');
  const file = path.join(dir, 'docker-compose.yml');
  writeFileSync(file, broken);
  assert.notEqual(compose(file, 'config', '-q').status, 0);
});
