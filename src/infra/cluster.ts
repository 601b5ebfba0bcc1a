import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Client as PgClient } from 'pg';
import { Connection } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { msToTs } from '@temporalio/common/lib/time';
import { postgresUrl, readPostgresCredentials, type Config } from '../clients/config';
import type { Logger } from '../clients/logger';
import { SEARCH_ATTRIBUTE_TYPES } from '../../workflows/search-attributes';
import { ensureDatabase, ensureLogin } from '../store/database-admin';
import { ensureProgram } from './binaries';
import { freePort, startProcess, stopOnSignal, waitFor, type ManagedProcess } from './process';
import { temporalReady } from './services';
import { startStack, type Stack } from './stack';

/**
 * `qcflow cluster`: qcflow as it runs in production, on one machine. The real Temporal server (not the dev
 * server) on Postgres, its UI server, MinIO, qcflow's Postgres, and every qcflow process on its own — two
 * qc-cpu workers, one qc-inference, one qc-review, one models worker and the review server — each with its
 * own log and its own /metrics and /health port.
 */
export interface ClusterMember {
  name: string;
  proc: ManagedProcess;
  /** qcflow processes and the Temporal server: where Prometheus scrapes them. */
  metricsUrl?: string;
}

export interface Cluster {
  cfg: Config;
  stack: Stack;
  uiUrl: string;
  reviewUrl: string;
  logDir: string;
  members: ClusterMember[];
  member(name: string): ClusterMember;
  /** Ends one process with `signal` (a crash, for fault tests); the others keep running. */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Free ports and a temp dir removed on stop (tests, benchmarks). */
  ephemeral?: boolean;
  cpuWorkers?: number;
}

const SCHEMA: Record<'temporal' | 'temporal_visibility', string> = {
  temporal: 'postgresql/v12/temporal',
  temporal_visibility: 'postgresql/v12/visibility',
};

/** Temporal's own login and databases in the stack's Postgres cluster (created once, kept 0600 in the state dir). */
async function temporalDatabases(stack: Stack, log: Logger): Promise<{ user: string; password: string; port: number }> {
  const creds = readPostgresCredentials(stack.cfg.stateDir);
  if (!creds) throw new Error('qcflow cluster runs Temporal on the embedded PostgreSQL; unset DATABASE_URL (an outside database needs its own Temporal setup: docs/operations.md)');
  const port = stack.cfg.embeddedPostgresPort;
  const file = path.join(stack.cfg.stateDir, 'temporal-db-credentials.json');
  const login = existsSync(file)
    ? JSON.parse(readFileSync(file, 'utf8')) as { user: string; password: string }
    : { user: 'temporal', password: randomBytes(24).toString('base64url') };
  const admin = new PgClient({ connectionString: postgresUrl(port, 'postgres', creds.admin) });
  await admin.connect();
  try {
    await ensureLogin(admin, login.user, login.password);
    writeFileSync(file, JSON.stringify(login), { mode: 0o600 });
    for (const db of Object.keys(SCHEMA)) await ensureDatabase(admin, db, login.user);
  } finally {
    await admin.end();
  }
  // The schema tool records versions, so running it again on a set-up database only applies what is new.
  const tool = await ensureProgram('temporal-sql-tool', stack.cfg.binCacheDir, log);
  for (const [db, schema] of Object.entries(SCHEMA)) {
    const base = ['--plugin', 'postgres12', '--ep', '127.0.0.1', '-p', String(port), '-u', login.user, '--pw', login.password, '--db', db];
    const setup = spawnSync(tool, [...base, 'setup-schema', '-v', '0.0'], { encoding: 'utf8' });
    if (setup.status !== 0 && !/already exists/.test(setup.stderr + setup.stdout)) throw new Error(`temporal-sql-tool setup-schema ${db} failed:\n${setup.stderr || setup.stdout}`);
    const update = spawnSync(tool, [...base, 'update-schema', '--schema-name', schema], { encoding: 'utf8' });
    if (update.status !== 0) throw new Error(`temporal-sql-tool update-schema ${db} failed:\n${update.stderr || update.stdout}`);
  }
  log.info({ databases: Object.keys(SCHEMA) }, 'Temporal schema is up to date');
  return { ...login, port };
}

interface ServerPorts { frontend: number; frontendHttp: number; history: number; matching: number; worker: number; membership: number[]; metrics: number }

/** The server's static configuration (what the Helm chart and the auto-setup image render from templates). */
function serverConfig(host: string, ports: ServerPorts, db: { user: string; password: string; port: number }, dynamicConfig: string): string {
  const store = (name: string): string => `
    ${name === 'temporal' ? 'default' : 'visibility'}:
      sql:
        pluginName: postgres12
        databaseName: ${name}
        connectAddr: "127.0.0.1:${db.port}"
        connectProtocol: tcp
        user: ${db.user}
        password: "${db.password}"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h`;
  const service = (name: string, grpc: number, membership: number, http?: number): string => `
  ${name}:
    rpc:
      grpcPort: ${grpc}
      membershipPort: ${membership}
      bindOnIP: ${host}${http ? `\n      httpPort: ${http}` : ''}`;
  return `# Written by qcflow cluster; edits are overwritten at the next start.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: 4
  datastores:${store('temporal')}${store('temporal_visibility')}
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: ${host}
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "${host}:${ports.metrics}"
services:${service('frontend', ports.frontend, ports.membership[0]!, ports.frontendHttp)}${service('history', ports.history, ports.membership[1]!)}${service('matching', ports.matching, ports.membership[2]!)}${service('worker', ports.worker, ports.membership[3]!)}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "${host}:${ports.frontend}"
      httpAddress: "${host}:${ports.frontendHttp}"
dcRedirectionPolicy:
  policy: noop
archival:
  history:
    state: disabled
  visibility:
    state: disabled
namespaceDefaults:
  archival:
    history:
      state: disabled
    visibility:
      state: disabled
dynamicConfigClient:
  filepath: "${dynamicConfig}"
  pollInterval: 10s
`;
}

/** The namespace and qcflow's search attributes, as the dev server's flags do for it (idempotent). */
async function registerNamespace(address: string, namespace: string, log: Logger): Promise<void> {
  const conn = await Connection.connect({ address });
  try {
    await conn.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('7 days') }).catch((err: { code?: number }) => {
      if (err.code !== 6) throw err; // ALREADY_EXISTS
    });
    const types = { Keyword: proto.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD };
    const have = await conn.operatorService.listSearchAttributes({ namespace });
    const missing = Object.entries(SEARCH_ATTRIBUTE_TYPES).filter(([name]) => !(name in (have.customAttributes ?? {})));
    if (missing.length) {
      await conn.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, types[type]])) });
    }
    log.info({ namespace, searchAttributes: Object.keys(SEARCH_ATTRIBUTE_TYPES) }, 'namespace and search attributes registered');
  } finally {
    await conn.close();
  }
}

const REPO = path.resolve(__dirname, '..', '..');

/** A qcflow entry point as its own Node process, configured through the environment like a container. */
function qcflowProcess(name: string, entry: string[], env: Record<string, string>, logDir: string): ManagedProcess {
  return startProcess(name, process.execPath, ['--import', 'tsx', ...entry], logDir, {
    cwd: REPO, env: { ...process.env, ...env, QCFLOW_LOG_LEVEL: process.env.QCFLOW_LOG_LEVEL ?? 'info' },
  });
}

async function healthy(url: string): Promise<boolean> {
  const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(3000) });
  return res.ok;
}

export type QcflowRole = 'cpu' | 'inference' | 'review' | 'models' | 'review-server';

const ENTRY: Record<QcflowRole, string[]> = {
  cpu: ['workers/cpu.ts'], inference: ['workers/inference.ts'], review: ['workers/review.ts'], models: ['workers/models.ts'], 'review-server': ['src/cli/main.ts', 'serve'],
};

/**
 * qcflow's processes against a running stack (`cfg` says where Temporal, Postgres and MinIO are),
 * each on a /metrics port of its own; resolves once every one reports healthy.
 */
export async function startQcflowProcesses(cfg: Config, databaseUrl: string, processes: Array<{ name: string; role: QcflowRole }>, log: Logger, track: (m: ClusterMember) => void): Promise<void> {
  const host = cfg.temporal.address.split(':')[0]!;
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: cfg.temporal.address, TEMPORAL_NAMESPACE: cfg.temporal.namespace, DATABASE_URL: databaseUrl,
    MINIO_ENDPOINT: cfg.minio.endPoint, MINIO_PORT: String(cfg.minio.port), MINIO_ACCESS_KEY: cfg.minio.accessKey, MINIO_SECRET_KEY: cfg.minio.secretKey, MINIO_BUCKET: cfg.minio.bucket,
    QCFLOW_STATE_DIR: cfg.stateDir, QCFLOW_METRICS_HOST: host, QCFLOW_HTTP_PORT: String(cfg.http.port),
    // The UI of this stack may ask the review server to decode payloads (where QCFLOW_PAYLOAD_KEYS is set).
    QCFLOW_CODEC_ORIGINS: [...new Set([...cfg.http.codecOrigins, `http://${host}:${cfg.temporal.uiPort}`])].join(','),
  };
  const logDir = path.join(cfg.stateDir, 'logs');
  const started: Array<ClusterMember & { metricsUrl: string }> = [];
  for (const p of processes) {
    const metricsPort = await freePort();
    const m: ClusterMember & { metricsUrl: string } = { name: p.name, proc: qcflowProcess(p.name, ENTRY[p.role], { ...env, QCFLOW_METRICS_PORT: String(metricsPort) }, logDir), metricsUrl: `http://${host}:${metricsPort}` };
    track(m);
    started.push(m);
  }
  await Promise.all(started.map((m) => waitFor(m.name, () => healthy(m.metricsUrl), { timeoutMs: cfg.startTimeoutMs, proc: m.proc, log })));
}

export async function startCluster(base: Config, log: Logger, o: ClusterOptions = {}): Promise<Cluster> {
  const members: ClusterMember[] = [];
  let stack: Stack | undefined;
  const stopAll = async (): Promise<void> => {
    // qcflow processes first (they drain), then the servers they use.
    for (const m of [...members].reverse()) await m.proc.stop();
    members.length = 0;
    await stack?.stop();
  };
  const releaseSignals = stopOnSignal(stopAll, log);
  try {
    // The state dir of `qcflow dev` (its Postgres, MinIO and logins), so every other qcflow command works
    // against the cluster unchanged; only Temporal's history lives elsewhere (Postgres, not SQLite).
    stack = await startStack(base, log, { ephemeral: o.ephemeral, temporal: false });
    let cfg = stack.cfg;
    // Temporal keeps its services' ports in smallint columns: a throwaway cluster's must be below 32768.
    if (o.ephemeral) cfg = { ...cfg, temporal: { ...cfg.temporal, address: `127.0.0.1:${await freePort(32768)}` } };
    const [host, frontendText] = cfg.temporal.address.split(':') as [string, string];
    if (await temporalReady(cfg.temporal.address).catch(() => false)) {
      throw new Error(`a Temporal server already answers at ${cfg.temporal.address} (a qcflow dev stack?); stop it, or set TEMPORAL_ADDRESS to a free port`);
    }
    const logDir = path.join(cfg.stateDir, 'logs');
    const confDir = path.join(cfg.stateDir, 'temporal-config');
    mkdirSync(confDir, { recursive: true });
    const [server, uiServer] = await Promise.all([
      ensureProgram('temporal-server', cfg.binCacheDir, log), ensureProgram('temporal-ui-server', cfg.binCacheDir, log),
    ]);
    const db = await temporalDatabases(stack, log);
    const frontend = Number(frontendText);
    const fixed = (k: number): Promise<number> => (o.ephemeral ? freePort(32768) : Promise.resolve(k));
    const ports: ServerPorts = {
      frontend, frontendHttp: await fixed(frontend + 10), history: await fixed(frontend + 1), matching: await fixed(frontend + 2), worker: await fixed(frontend + 6),
      membership: [await fixed(frontend - 300), await fixed(frontend - 299), await fixed(frontend - 298), await fixed(frontend - 294)], metrics: await fixed(8000 + frontend - 7233), // 8000: where Temporal's images serve it
    };
    writeFileSync(path.join(confDir, 'qcflow.yaml'), serverConfig(host, ports, db, path.join(REPO, 'deploy', 'temporal-dynamicconfig.yaml')), { mode: 0o600 });
    log.info({ address: cfg.temporal.address, persistence: `postgres12 127.0.0.1:${db.port}` }, 'starting the Temporal server');
    const temporalProc = startProcess('temporal-server', server, ['--root', cfg.stateDir, '--config', 'temporal-config', '--env', 'qcflow', '--allow-no-auth', 'start'], logDir);
    members.push({ name: 'temporal-server', proc: temporalProc, metricsUrl: `http://${host}:${ports.metrics}` });
    await waitFor('Temporal server', () => temporalReady(cfg.temporal.address), { timeoutMs: cfg.startTimeoutMs, proc: temporalProc, log });
    await registerNamespace(cfg.temporal.address, cfg.temporal.namespace, log);

    const httpPort = o.ephemeral ? await freePort() : cfg.http.port;
    // With sealed payloads the UI asks the review server to decode them, with the operator's session cookie.
    const codec = cfg.payloadKeys ? `codec:\n  endpoint: http://${cfg.http.host}:${httpPort}/codec\n  includeCredentials: true\n` : '';
    writeFileSync(path.join(confDir, 'ui.yaml'), `temporalGrpcAddress: ${cfg.temporal.address}\nhost: ${host}\nport: ${cfg.temporal.uiPort}\nenableUi: true\ndefaultNamespace: ${cfg.temporal.namespace}\n${codec}`);
    const ui = startProcess('temporal-ui', uiServer, ['--root', cfg.stateDir, '--config', 'temporal-config', '--env', 'ui', 'start'], logDir);
    members.push({ name: 'temporal-ui', proc: ui });
    const uiUrl = `http://${host}:${cfg.temporal.uiPort}`;

    cfg = { ...cfg, http: { ...cfg.http, port: httpPort, serverUrl: `http://${cfg.http.host}:${httpPort}` } };
    await startQcflowProcesses(cfg, stack.databaseUrl, [
      ...Array.from({ length: o.cpuWorkers ?? 2 }, (_, i) => ({ name: `qc-cpu-${i + 1}`, role: 'cpu' as const })),
      { name: 'qc-inference', role: 'inference' }, { name: 'qc-review', role: 'review' }, { name: 'models', role: 'models' },
      { name: 'review-server', role: 'review-server' },
    ], log, (m) => members.push(m));
    await waitFor('Temporal UI', async () => (await fetch(uiUrl, { signal: AbortSignal.timeout(2000) })).ok, { timeoutMs: cfg.startTimeoutMs, proc: ui, log });
    releaseSignals();
    const member = (name: string): ClusterMember => {
      const m = members.find((x) => x.name === name);
      if (!m) throw new Error(`no cluster process named ${name}; there are: ${members.map((x) => x.name).join(', ')}`);
      return m;
    };
    return {
      cfg, stack, uiUrl, reviewUrl: cfg.http.serverUrl, logDir, members, member,
      async kill(name, signal = 'SIGKILL') {
        log.warn({ process: name, signal }, 'ending a cluster process on purpose');
        await member(name).proc.kill(signal);
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    releaseSignals();
    throw err;
  }
}
