import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client as MinioClient } from 'minio';
import { createPool } from '../../src/clients/pg';
import { harness } from './helpers';

/** What another local user can reach on a stack qcflow started: the data stores take generated credentials only. */
test('the embedded Postgres takes passwords only, and qcflow connects as an owner without superuser rights', async () => {
  const h = await harness({ worker: false });
  try {
    const who = await h.pool.query<{ rolsuper: boolean; owner: string }>(
      `SELECT r.rolsuper, pg_get_userbyid(d.datdba) AS owner FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()`);
    assert.deepEqual(who.rows[0], { rolsuper: false, owner: 'qcflow_app' });
    await assert.rejects(h.pool.query(`COPY (SELECT 1) TO PROGRAM 'true'`), /permission denied|must be superuser|pg_execute_server_program/);
    // Without the password (what trust auth used to accept from any local user): refused.
    const url = new URL(h.cfg.databaseUrl!);
    for (const user of ['qcflow', 'qcflow_app']) {
      const anon = createPool(`postgres://${user}@${url.host}/qcflow`, 1);
      await assert.rejects(anon.query('SELECT 1'), /password/);
      await anon.end();
    }
  } finally {
    await h.close();
  }
});

test('the embedded MinIO was created with generated root keys: the old fixed defaults are refused', async () => {
  const h = await harness({ worker: false });
  try {
    assert.notEqual(h.cfg.minio.accessKey, 'qcflow');
    assert.ok(h.cfg.minio.secretKey.length >= 24);
    const defaults = new MinioClient({ endPoint: h.cfg.minio.endPoint, port: h.cfg.minio.port, useSSL: false, accessKey: 'qcflow', secretKey: 'qcflow-secret' });
    await assert.rejects(defaults.listBuckets(), /Access Key|InvalidAccessKeyId|does not exist/i);
    assert.ok((await h.store.client.listBuckets()).some((b) => b.name === h.cfg.minio.bucket));
  } finally {
    await h.close();
  }
});
