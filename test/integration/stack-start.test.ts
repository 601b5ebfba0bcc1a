import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../../src/infra/process';
import { REPO } from './helpers';

/**
 * Failure paths of the embedded stack's start. Postgres and MinIO are the suite's own (reused, so left
 * alone); Temporal is a stand-in binary that never answers, so its start times out or is interrupted.
 */
function fakeTemporal(): { binDir: string; pidFile: string } {
  const binDir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-fakebin-'));
  const pidFile = path.join(binDir, 'pid');
  writeFileSync(path.join(binDir, 'temporal'), `#!/bin/sh\necho "fake temporal: listening soon"\necho $$ > ${pidFile}\nexec sleep 600\n`);
  chmodSync(path.join(binDir, 'temporal'), 0o755);
  return { binDir, pidFile };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function startStackIn(env: NodeJS.ProcessEnv, onSpawned?: (child: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; out: string }> {
  const script = "require('./src/infra/stack').startStack(require('./src/clients/config').loadConfig(), require('./src/clients/logger').getLogger(require('./src/clients/config').loadConfig(), 't')).then((s) => s.stop(), (e) => { console.error('FAILED: ' + e.message); process.exit(3); })";
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    onSpawned?.(child);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

test('a server start that times out fails with its log and leaves no process; an interrupted start stops what it spawned', async () => {
  const { binDir, pidFile } = fakeTemporal();
  const env = {
    QCFLOW_BIN_CACHE: binDir, QCFLOW_STATE_DIR: mkdtempSync(path.join(os.tmpdir(), 'qcflow-state-')),
    TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`, TEMPORAL_UI_PORT: String(await freePort()), QCFLOW_START_TIMEOUT_S: '2', QCFLOW_LOG_LEVEL: 'info',
  };
  const timedOut = await startStackIn(env);
  assert.equal(timedOut.code, 3, timedOut.out);
  assert.match(timedOut.out, /FAILED: Temporal dev server did not become ready within 2s \(raise QCFLOW_START_TIMEOUT_S/);
  assert.match(timedOut.out, /fake temporal: listening soon/, 'the error shows the end of the server log');
  const pid = Number(readFileSync(pidFile, 'utf8'));
  assert.equal(alive(pid), false, 'the timed-out server was stopped');

  const interrupted = await startStackIn({ ...env, QCFLOW_START_TIMEOUT_S: '60' }, (child) => {
    const poll = setInterval(() => {
      try {
        if (Number(readFileSync(pidFile, 'utf8')) !== pid) {
          clearInterval(poll);
          child.kill('SIGTERM');
        }
      } catch { /* not spawned yet */ }
    }, 100);
  });
  assert.equal(interrupted.code, 143, interrupted.out);
  assert.equal(alive(Number(readFileSync(pidFile, 'utf8'))), false, 'the interrupted start stopped its server');
});

test('a port held by a program that is not the expected server is reported, not reused', async () => {
  // Probes hang up abruptly; the squatter shrugs that off like any server.
  const squatter = net.createServer((s) => { s.on('error', () => undefined); s.end('HTTP/1.1 400 nope\r\n\r\n'); });
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
  const port = (squatter.address() as net.AddressInfo).port;
  try {
    const r = await startStackIn({ QCFLOW_BIN_CACHE: fakeTemporal().binDir, QCFLOW_STATE_DIR: mkdtempSync(path.join(os.tmpdir(), 'qcflow-state-')), TEMPORAL_ADDRESS: `127.0.0.1:${port}`, QCFLOW_START_TIMEOUT_S: '5' });
    assert.equal(r.code, 3, r.out);
    assert.match(r.out, new RegExp(`FAILED: port 127.0.0.1:${port} is in use by a program that does not answer as Temporal; stop it, or set TEMPORAL_ADDRESS to a free port`));
  } finally {
    squatter.close();
  }
});

test('a Temporal server that comes up late is seen within 3 s of its port opening, not a backoff period later', async () => {
  const { ensureProgram } = await import('../../src/infra/binaries');
  const { loadConfig } = await import('../../src/clients/config');
  const { getLogger } = await import('../../src/clients/logger');
  const cfg = loadConfig();
  const real = await ensureProgram('temporal', cfg.binCacheDir, getLogger(cfg, 'test'));
  // The real server, started 20 s late (a first start on a loaded machine). With grpc-js's shared,
  // exponentially backed-off subchannel the probe next tried ~6 s after the port opened (measured: a 30 s
  // start was seen at 43 s).
  const binDir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-slowbin-'));
  writeFileSync(path.join(binDir, 'temporal'), `#!/bin/sh\nsleep 20\nexec ${real} "$@"\n`);
  chmodSync(path.join(binDir, 'temporal'), 0o755);
  const port = await freePort();
  // When the server's port opens, watched from here: the probe must see it soon after, however loaded the
  // machine (a start under load takes longer, but that moves both times).
  let openedAt = 0;
  let done = false;
  const watch = (async () => {
    const { portInUse } = await import('../../src/infra/process');
    while (!done && !openedAt) {
      if (await portInUse('127.0.0.1', port)) openedAt = Date.now();
      else await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const r = await startStackIn({ QCFLOW_BIN_CACHE: binDir, QCFLOW_STATE_DIR: mkdtempSync(path.join(os.tmpdir(), 'qcflow-state-')), TEMPORAL_ADDRESS: `127.0.0.1:${port}`, TEMPORAL_UI_PORT: String(await freePort()), QCFLOW_LOG_LEVEL: 'info' });
  done = true;
  await watch;
  assert.equal(r.code, 0, r.out);
  const ready = /"time":(\d+),[^\n]*"service":"Temporal dev server","readyMs":(\d+)/.exec(r.out);
  assert.ok(ready && openedAt > 0, r.out.slice(-2000));
  const readyAt = Number(ready[1]);
  assert.ok(Number(ready[2]) >= 20_000, 'the stand-in really started late');
  assert.ok(readyAt - openedAt < 3000, `seen ${readyAt - openedAt} ms after its port opened`);
});
