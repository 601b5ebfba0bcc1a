import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { tightenStateDir } from '../../src/infra/stack';

const mode = (p: string): number => statSync(p).mode & 0o777;

test('an old world-readable state dir is closed: 0700, or 0711 around a cluster the postgres user must reach (as root)', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'qcflow-state-'));
  try {
    for (const clusterInside of [false, true]) {
      const dir = path.join(root, String(clusterInside));
      mkdirSync(path.join(dir, 'logs'), { recursive: true, mode: 0o755 });
      writeFileSync(path.join(dir, 'temporal.sqlite'), '', { mode: 0o644 });
      if (clusterInside) { mkdirSync(path.join(dir, 'postgres'), { mode: 0o700 }); writeFileSync(path.join(dir, 'postgres', 'PG_VERSION'), '15'); }
      chmodSync(dir, 0o755);
      tightenStateDir(dir, pino({ level: 'silent' }));
      if (clusterInside && process.getuid?.() === 0) {
        assert.equal(mode(dir), 0o711);
        assert.equal(mode(path.join(dir, 'logs')), 0o700);
        assert.equal(mode(path.join(dir, 'temporal.sqlite')), 0o600);
        assert.equal(mode(path.join(dir, 'postgres')), 0o700, 'the cluster is left as Postgres keeps it');
      } else {
        assert.equal(mode(dir), 0o700);
      }
      // A second start changes nothing.
      tightenStateDir(dir, pino({ level: 'silent' }));
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
