import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Client as PgClient } from 'pg';
import { Connection } from '@temporalio/client';
import type { Logger } from '../clients/logger';
import { postgresCredentialsFile, postgresUrl, readPostgresCredentials, type PostgresCredentials } from '../clients/config';
import { findPostgresBinDir, ensureProgram, MissingToolError } from './binaries';
import { startProcess, waitFor, type ManagedProcess } from './process';
import { SEARCH_ATTRIBUTE_TYPES } from '../../workflows/search-attributes';
import { createLogin, ensureDatabase, giveObjectsTo, grantRole, ping, reloadConfiguration, roleExists, setDatabaseOwner, setPassword } from '../store/database-admin';

/** What every server start needs besides its own options. */
export interface StartContext {
  log: Logger;
  timeoutMs: number;
  /** Called as soon as the process is spawned, so the caller stops it even when its start fails or times out. */
  track(p: ManagedProcess): void;
}

export interface TemporalOptions {
  host: string;
  port: number;
  uiPort: number;
  namespace: string;
  /** SQLite file for a durable dev server; omitted for an in-memory (test) server. */
  dbFile?: string;
  binCacheDir: string;
  logDir: string;
}

export async function temporalReady(address: string): Promise<boolean> {
  const conn = await Connection.connect({ address, connectTimeout: 1000, channelArgs: { 'grpc.use_local_subchannel_pool': 1 } });
  try {
    await conn.workflowService.getSystemInfo({});
    return true;
  } finally {
    await conn.close();
  }
}

/** The Temporal CLI dev server with its UI, the qcflow search attributes and task priority enabled. */
export async function startTemporal(o: TemporalOptions, { log, timeoutMs, track }: StartContext): Promise<ManagedProcess> {
  const bin = await ensureProgram('temporal', o.binCacheDir, log);
  const args = [
    'server', 'start-dev',
    '--ip', o.host, '--port', String(o.port), '--ui-port', String(o.uiPort),
    '--namespace', o.namespace, '--log-level', 'warn',
    '--dynamic-config-value', 'matching.useNewMatcher=true',
    // Priority orders tasks within a task-queue partition; one partition makes the order strict on the
    // dev server (a production cluster keeps its partitions and gets best-effort ordering across them).
    '--dynamic-config-value', 'matching.numTaskqueueReadPartitions=1',
    '--dynamic-config-value', 'matching.numTaskqueueWritePartitions=1',
    ...Object.entries(SEARCH_ATTRIBUTE_TYPES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
  ];
  if (o.dbFile) args.push('--db-filename', o.dbFile);
  log.info({ port: o.port, ui: `http://${o.host}:${o.uiPort}`, persistence: o.dbFile ?? 'in-memory' }, 'starting Temporal dev server');
  const proc = startProcess('temporal', bin, args, o.logDir);
  track(proc);
  await waitFor('Temporal dev server', () => temporalReady(`${o.host}:${o.port}`), { timeoutMs, proc, log });
  return proc;
}

export interface MinioOptions {
  host: string;
  port: number;
  consolePort: number;
  dataDir: string;
  accessKey: string;
  secretKey: string;
  binCacheDir: string;
  logDir: string;
}

export async function minioReady(host: string, port: number): Promise<boolean> {
  const res = await fetch(`http://${host}:${port}/minio/health/ready`, { signal: AbortSignal.timeout(1000) });
  return res.ok;
}

export async function startMinio(o: MinioOptions, { log, timeoutMs, track }: StartContext): Promise<ManagedProcess> {
  const bin = await ensureProgram('minio', o.binCacheDir, log);
  mkdirSync(o.dataDir, { recursive: true });
  log.info({ port: o.port, dataDir: o.dataDir }, 'starting MinIO');
  const proc = startProcess('minio', bin, ['server', o.dataDir, '--address', `${o.host}:${o.port}`, '--console-address', `${o.host}:${o.consolePort}`, '--quiet'], o.logDir, {
    env: { ...process.env, MINIO_ROOT_USER: o.accessKey, MINIO_ROOT_PASSWORD: o.secretKey, MINIO_BROWSER: 'on', MINIO_UPDATE: 'off' },
  });
  track(proc);
  await waitFor('MinIO', () => minioReady(o.host, o.port), { timeoutMs, proc, log });
  return proc;
}

export async function postgresReachable(url: string): Promise<boolean> {
  const c = new PgClient({ connectionString: url, connectionTimeoutMillis: 1500 });
  try {
    await c.connect();
    await ping(c);
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

export interface PostgresOptions {
  port: number;
  /** The state dir; the cluster lives in `<stateDir>/postgres` unless the postgres user cannot reach it. */
  stateDir: string;
  logDir: string;
  /** Trade durability for speed in throwaway test clusters. */
  fast: boolean;
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0) {
    throw new MissingToolError('running as root, PostgreSQL refuses to run as root and there is no "postgres" user: create one (useradd postgres) or set DATABASE_URL');
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Where clusters go when the state dir is out of the postgres user's reach (a clone under a 0700 home). */
export const OUTSIDE_CLUSTER_ROOT = '/var/lib/qcflow';

/**
 * The cluster's folder. As root the server runs as `postgres`, who must be able to traverse every folder
 * above it; a clone in /root or a `mktemp -d` folder is 0700, so there the cluster goes to
 * /var/lib/qcflow/postgres-<hash of the state dir> (owned by postgres) and `<stateDir>/postgres-location`
 * says where.
 */
export function postgresDataDir(stateDir: string, owner: { uid: number; gid: number } | undefined, log?: StartContext['log']): string {
  const inside = path.join(stateDir, 'postgres');
  const reachable = !owner || spawnSync('test', ['-x', stateDir], { uid: owner.uid, gid: owner.gid }).status === 0;
  if (reachable) return inside;
  const outside = path.join(OUTSIDE_CLUSTER_ROOT, `postgres-${createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 12)}`);
  const location = path.join(stateDir, 'postgres-location');
  // A cluster here without a location file in the state dir belongs to a state dir that was deleted (to
  // start over) and made again at the same path: its logins went with it. Moved aside, not deleted.
  if (!existsSync(location) && existsSync(path.join(outside, 'PG_VERSION'))) {
    const aside = `${outside}-orphan-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(outside, aside);
    rmSync(`${outside}-socket`, { recursive: true, force: true });
    log?.warn({ stateDir, movedTo: aside }, 'found the cluster of a deleted state dir at this path; moved it aside and starting a new one (delete it when you do not need its data)');
  }
  writeFileSync(location, `${outside}\n`);
  return outside;
}

/** A local cluster from the installed PostgreSQL binaries, owned by the `postgres` user when we are root. */
export async function startPostgres(o: PostgresOptions, { log, timeoutMs, track }: StartContext): Promise<{ proc: ManagedProcess; url: string; dataDir: string }> {
  const binDir = findPostgresBinDir();
  if (!binDir) {
    throw new MissingToolError('no PostgreSQL server binaries found: apt-get install postgresql (or set DATABASE_URL to a reachable server)');
  }
  const owner = postgresUser();
  mkdirSync(o.stateDir, { recursive: true });
  const dataDir = postgresDataDir(o.stateDir, owner, log);
  if (dataDir !== path.join(o.stateDir, 'postgres')) {
    log.info({ dataDir, stateDir: o.stateDir }, 'the postgres user cannot reach the state dir (a private folder above it); keeping the cluster outside it');
  }
  // Postgres changes into its working directory's path at start, so it must be one the server's user can reach.
  const spawnAs = owner ? { uid: owner.uid, gid: owner.gid, cwd: path.dirname(dataDir) } : {};
  mkdirSync(dataDir, { recursive: true });
  const sockDir = path.join(dataDir, '..', `${path.basename(dataDir)}-socket`);
  mkdirSync(sockDir, { recursive: true });
  if (owner) {
    chownSync(dataDir, owner.uid, owner.gid);
    chownSync(sockDir, owner.uid, owner.gid);
  }
  const credsFile = postgresCredentialsFile(o.stateDir);
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    // A new cluster gets password (scram) logins, kept 0600 in the state dir: trust auth on 127.0.0.1 let
    // any local user connect as the superuser and run COPY … TO PROGRAM as the postgres OS user.
    const creds: PostgresCredentials = {
      admin: { user: 'qcflow', password: randomBytes(24).toString('base64url') },
      app: { user: 'qcflow_app', password: randomBytes(24).toString('base64url') },
    };
    writeFileSync(credsFile, JSON.stringify(creds), { mode: 0o600 });
    const pwfile = path.join(path.dirname(dataDir), `.${path.basename(dataDir)}-pw-${process.pid}`);
    writeFileSync(pwfile, creds.admin.password, { mode: 0o600 });
    if (owner) chownSync(pwfile, owner.uid, owner.gid);
    log.info({ dataDir, binDir }, 'initialising embedded PostgreSQL cluster');
    try {
      const r = spawnSync(path.join(binDir, 'initdb'), ['-D', dataDir, '-U', 'qcflow', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C'], { encoding: 'utf8', ...spawnAs });
      if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr || r.stdout}`);
      writeFileSync(path.join(o.logDir, 'postgres-initdb.log'), r.stdout);
    } finally {
      rmSync(pwfile, { force: true });
    }
  }
  let creds = readPostgresCredentials(o.stateDir);
  const args = ['-D', dataDir, '-p', String(o.port), '-k', sockDir, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'];
  if (o.fast) args.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  log.info({ port: o.port, dataDir }, 'starting embedded PostgreSQL');
  const proc = startProcess('postgres', path.join(binDir, 'postgres'), args, o.logDir, spawnAs);
  track(proc);
  await waitFor('PostgreSQL', () => postgresReachable(postgresUrl(o.port, 'postgres', creds?.admin)), { timeoutMs, proc, log });
  // A cluster created before logins were generated trusts every local connection: give it passwords now.
  if (!creds) creds = await secureTrustCluster(o, dataDir, log);
  const admin = new PgClient({ connectionString: postgresUrl(o.port, 'postgres', creds.admin) });
  let newAppRole = false;
  await admin.connect();
  try {
    await ensureDatabase(admin, 'qcflow');
    // The application role owns its database (so migrations can create tables) and nothing more;
    // pg_checkpoint lets benchmarks settle the database between rounds.
    if (!(await roleExists(admin, creds.app.user))) {
      await createLogin(admin, creds.app.user, creds.app.password, ['NOCREATEDB']);
      await setDatabaseOwner(admin, 'qcflow', creds.app.user);
      await grantRole(admin, 'pg_checkpoint', creds.app.user);
      newAppRole = true;
    }
  } finally {
    await admin.end();
  }
  // Only a database that existed before its app role can hold tables the superuser owns.
  if (newAppRole) await giveTablesTo(postgresUrl(o.port, 'qcflow', creds.admin), creds.app.user);
  return { proc, url: postgresUrl(o.port, 'qcflow', creds.app), dataDir };
}

/**
 * Gives a trust-auth cluster (made before qcflow generated logins) the same setup as a new one: a password
 * for the superuser, scram-only pg_hba, reloaded; the credentials kept 0600 in the state dir. The app role
 * and table ownership follow in startPostgres as for a new cluster.
 */
async function secureTrustCluster(o: PostgresOptions, dataDir: string, log: StartContext['log']): Promise<PostgresCredentials> {
  const creds: PostgresCredentials = {
    admin: { user: 'qcflow', password: randomBytes(24).toString('base64url') },
    app: { user: 'qcflow_app', password: randomBytes(24).toString('base64url') },
  };
  log.warn({ dataDir }, 'this PostgreSQL cluster predates generated logins and trusts every local connection; setting passwords and scram authentication');
  const admin = new PgClient({ connectionString: postgresUrl(o.port, 'postgres') });
  await admin.connect();
  try {
    await setPassword(admin, creds.admin.user, creds.admin.password);
    // An app role left from an earlier attempt gets this attempt's password.
    if (await roleExists(admin, creds.app.user)) await setPassword(admin, creds.app.user, creds.app.password);
    // Saved before pg_hba changes, so a crash in between leaves logins that work, not a locked cluster.
    writeFileSync(postgresCredentialsFile(o.stateDir), JSON.stringify(creds), { mode: 0o600 });
    const hbaFile = path.join(dataDir, 'pg_hba.conf');
    const hba = readFileSync(hbaFile, 'utf8').split('\n').map((l) => (l.trimStart().startsWith('#') ? l : l.replace(/\btrust\b/g, 'scram-sha-256'))).join('\n');
    writeFileSync(hbaFile, hba);
    await reloadConfiguration(admin);
  } finally {
    await admin.end();
  }
  return creds;
}

/** Tables, sequences and views of the qcflow database that the superuser still owns (a cluster from before the app role) go to the app role. */
async function giveTablesTo(adminUrl: string, appUser: string): Promise<void> {
  const c = new PgClient({ connectionString: adminUrl });
  await c.connect();
  try {
    await giveObjectsTo(c, appUser);
  } finally {
    await c.end();
  }
}
