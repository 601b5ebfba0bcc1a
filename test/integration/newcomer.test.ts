import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, portInUse } from '../../src/infra/process';
import { REPO } from './helpers';

/** Command lines of running processes that mention `needle` (the clone, its state dir, an outside cluster). */
function processesMentioning(needles: string[]): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (needles.some((n) => cmd.includes(n))) found.push(`${pid}: ${cmd}`);
  }
  return found;
}

/**
 * README's first command as a newcomer meets it, as far as one machine allows: the committed tree cloned
 * into a 0700 folder (as under /root or `mktemp -d`), dependencies installed by the command itself, a fresh
 * state dir, the embedded stack on ports nothing else uses. The Go-built servers come from the shared
 * binary cache (building them takes minutes; .ci/run builds them on an empty cache first).
 */
test('npm run demo in a fresh clone inside a private folder releases, stops everything it started and leaves git status clean', { timeout: 900_000 }, async (t) => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'qcflow-newcomer-'));
  assert.equal(statSync(home).mode & 0o777, 0o700);
  const clone = path.join(home, 'qcflow');
  try {
    execFileSync('git', ['clone', '--quiet', REPO, clone]);
    const ports = { temporal: await freePort(), ui: await freePort(), minio: await freePort(), console: await freePort(), pg: await freePort(), http: await freePort() };
    // Only what a newcomer's shell has: none of the test stack's settings leak in.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH, HOME: process.env.HOME, QCFLOW_BIN_CACHE: process.env.QCFLOW_BIN_CACHE,
      ONNXRUNTIME_NODE_INSTALL: 'skip', QCFLOW_LOG_LEVEL: 'info',
      TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`, TEMPORAL_UI_PORT: String(ports.ui),
      MINIO_PORT: String(ports.minio), MINIO_CONSOLE_PORT: String(ports.console), QCFLOW_PG_PORT: String(ports.pg),
      QCFLOW_HTTP_PORT: String(ports.http), QCFLOW_SERVER_URL: `http://127.0.0.1:${ports.http}`,
    };
    const started = Date.now();
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn('npm', ['run', 'demo', '--', '--samples', '400'], { cwd: clone, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      child.on('exit', (c) => resolve({ code: c, out }));
    });
    t.diagnostic(`npm run demo: exit ${code} after ${Math.round((Date.now() - started) / 1000)} s`);
    assert.equal(code, 0, out.slice(-4000));
    assert.match(out, /^release v1: \d+ samples$/m);
    assert.match(out, /s3:\/\/qcflow\/releases\/demo\/v1\/data\.arrow/);

    const stateDir = path.join(clone, '.qcflow');
    const location = path.join(stateDir, 'postgres-location');
    const outside = existsSync(location) ? readFileSync(location, 'utf8').trim() : undefined;
    if (process.getuid?.() === 0) assert.ok(outside, 'as root, the cluster is kept where the postgres user can reach it');
    assert.deepEqual(processesMentioning([clone, ...(outside ? [outside] : [])]), [], 'no process the demo started is left');
    for (const [name, port] of Object.entries(ports)) assert.equal(await portInUse('127.0.0.1', port), false, `${name} port ${port} is free again`);
    assert.equal(execFileSync('git', ['status', '--porcelain'], { cwd: clone, encoding: 'utf8' }), '', 'the checkout is unchanged');
    if (outside) rmSync(outside, { recursive: true, force: true });
    if (outside) rmSync(`${outside}-socket`, { recursive: true, force: true });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
