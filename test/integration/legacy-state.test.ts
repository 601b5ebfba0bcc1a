import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client as PgClient } from 'pg';
import { Client as MinioClient } from 'minio';
import { loadConfig, minioCredentialsFile, postgresCredentialsFile, postgresUrl, readPostgresCredentials, type Config } from '../../src/clients/config';
import { getLogger } from '../../src/clients/logger';
import { createObjectStore, getObjectText, putObject } from '../../src/clients/minio';
import { freePort } from '../../src/infra/process';
import { startStack } from '../../src/infra/stack';

/** A stack of its own in `stateDir` (kept between starts, unlike an ephemeral one), on free ports. */
async function stackIn(base: Config, stateDir: string): Promise<Config> {
  return {
    ...base, stateDir, databaseUrl: undefined, embeddedPostgresPort: await freePort(),
    temporal: { ...base.temporal, address: `127.0.0.1:${await freePort()}`, uiPort: await freePort() },
    minio: { ...base.minio, endPoint: '127.0.0.1', port: await freePort(), consolePort: await freePort() },
  };
}

const sql = async (url: string, q: string): Promise<void> => {
  const c = new PgClient({ connectionString: url });
  await c.connect();
  try { await c.query(q); } finally { await c.end(); }
};

/**
 * A state dir from before this version: world-readable (0755), a Postgres cluster on trust auth whose
 * tables the superuser owns and no app role, and MinIO on the old fixed root keys. Starting qcflow on it
 * must close it up without losing a row or an object.
 */
test('a state dir from before generated logins is secured at start: scram-only Postgres, an app owner, new MinIO keys, closed permissions', async () => {
  const base = loadConfig();
  const parent = mkdtempSync(path.join(os.tmpdir(), 'qcflow-legacy-'));
  chmodSync(parent, 0o755);
  const stateDir = path.join(parent, 'state');
  const cfg = await stackIn(base, stateDir);
  const log = getLogger(cfg, 'test');
  const oldKeys = { accessKey: 'qcflow', secretKey: 'qcflow-secret' };
  let outside: string | undefined;
  try {
    // The old layout: MinIO started on the fixed keys (named by the environment, so none are generated) …
    process.env.MINIO_ACCESS_KEY = oldKeys.accessKey;
    process.env.MINIO_SECRET_KEY = oldKeys.secretKey;
    let stack = await startStack({ ...cfg, minio: { ...cfg.minio, ...oldKeys } }, log);
    delete process.env.MINIO_ACCESS_KEY;
    delete process.env.MINIO_SECRET_KEY;
    await putObject(createObjectStore(stack.cfg.minio), 'raw/legacy/kept.txt', Buffer.from('kept'), 'text/plain');
    // … and Postgres as it was: the superuser owns everything, no app role, trust for every local login.
    const creds = readPostgresCredentials(stateDir)!;
    const admin = postgresUrl(cfg.embeddedPostgresPort, 'qcflow', creds.admin);
    await sql(admin, `CREATE TABLE legacy_rows (x int); INSERT INTO legacy_rows VALUES (1), (2); REASSIGN OWNED BY qcflow_app TO qcflow`);
    await sql(postgresUrl(cfg.embeddedPostgresPort, 'postgres', creds.admin), 'ALTER DATABASE qcflow OWNER TO qcflow');
    await sql(postgresUrl(cfg.embeddedPostgresPort, 'postgres', creds.admin), 'DROP ROLE qcflow_app');
    const location = path.join(stateDir, 'postgres-location');
    const dataDir = existsSync(location) ? readFileSync(location, 'utf8').trim() : path.join(stateDir, 'postgres');
    if (existsSync(location)) outside = dataDir;
    const hba = path.join(dataDir, 'pg_hba.conf');
    writeFileSync(hba, readFileSync(hba, 'utf8').replace(/scram-sha-256/g, 'trust'));
    await sql(postgresUrl(cfg.embeddedPostgresPort, 'postgres', creds.admin), 'SELECT pg_reload_conf()');
    unlinkSync(postgresCredentialsFile(stateDir));
    await stack.stop();
    assert.ok(!existsSync(minioCredentialsFile(stateDir)));
    // And the state dir as every version before made it: readable by everyone.
    chmodSync(stateDir, 0o755);
    chmodSync(path.join(stateDir, 'logs'), 0o755);

    stack = await startStack(cfg, log);
    try {
      // Postgres: logins generated and kept 0600, passwords required, the app role owns the old tables.
      assert.equal(statSync(postgresCredentialsFile(stateDir)).mode & 0o777, 0o600);
      await assert.rejects(sql(postgresUrl(cfg.embeddedPostgresPort, 'qcflow'), 'SELECT 1'), /password/);
      const app = new PgClient({ connectionString: stack.databaseUrl });
      await app.connect();
      try {
        assert.equal((await app.query<{ u: string; s: boolean }>('SELECT current_user AS u, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS s')).rows[0]!.s, false);
        assert.equal((await app.query<{ n: string }>('SELECT count(*) AS n FROM legacy_rows')).rows[0]!.n, '2');
        await app.query('INSERT INTO legacy_rows VALUES (3)');
        assert.equal((await app.query<{ n: string }>(`SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'qcflow_app'`)).rows[0]!.n, '0');
      } finally {
        await app.end();
      }
      // MinIO: new keys, kept 0600; the old ones refused; the objects still there.
      assert.equal(statSync(minioCredentialsFile(stateDir)).mode & 0o777, 0o600);
      assert.notEqual(stack.cfg.minio.accessKey, oldKeys.accessKey);
      const old = new MinioClient({ endPoint: '127.0.0.1', port: cfg.minio.port, useSSL: false, ...oldKeys });
      await assert.rejects(old.listBuckets(), /Access Key|InvalidAccessKeyId|does not exist/i);
      assert.equal(await getObjectText(createObjectStore(stack.cfg.minio), 'raw/legacy/kept.txt'), 'kept');
      // The state dir is closed to other users (0711 only when the cluster inside must stay reachable).
      const mode = (p: string): number => statSync(p).mode & 0o777;
      assert.ok(mode(stateDir) === 0o700 || (mode(stateDir) === 0o711 && (mode(path.join(stateDir, 'logs')) & 0o077) === 0), `state dir mode ${mode(stateDir).toString(8)}`);
    } finally {
      await stack.stop();
    }
  } finally {
    delete process.env.MINIO_ACCESS_KEY;
    delete process.env.MINIO_SECRET_KEY;
    rmSync(parent, { recursive: true, force: true });
    if (outside) for (const d of [outside, `${outside}-socket`]) rmSync(d, { recursive: true, force: true });
  }
});

test('a state dir deleted to start over and made again at the same path gets a new cluster; the old one is moved aside', { skip: process.getuid?.() !== 0 && 'the cluster lives outside the state dir only when running as root' }, async () => {
  const base = loadConfig();
  const parent = mkdtempSync(path.join(os.tmpdir(), 'qcflow-reset-'));
  const stateDir = path.join(parent, 'state');
  const cfg = await stackIn(base, stateDir);
  const log = getLogger(cfg, 'test');
  let outside: string | undefined;
  try {
    let stack = await startStack(cfg, log);
    outside = readFileSync(path.join(stateDir, 'postgres-location'), 'utf8').trim();
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
    stack = await startStack(cfg, log);
    try {
      const c = new PgClient({ connectionString: stack.databaseUrl });
      await c.connect();
      await c.end();
    } finally {
      await stack.stop();
    }
    assert.equal(readFileSync(path.join(stateDir, 'postgres-location'), 'utf8').trim(), outside);
    assert.ok(readdirSync(path.dirname(outside)).some((d) => d.startsWith(`${path.basename(outside!)}-orphan-`)), 'the old cluster was moved aside, not deleted');
  } finally {
    rmSync(parent, { recursive: true, force: true });
    if (outside) for (const d of readdirSync(path.dirname(outside)).filter((x) => x.startsWith(path.basename(outside!)))) rmSync(path.join(path.dirname(outside), d), { recursive: true, force: true });
  }
});
