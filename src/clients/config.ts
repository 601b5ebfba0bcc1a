import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { parsePayloadKeys, PayloadKeyError, type PayloadKey } from './payload-codec';

/**
 * Every setting qcflow reads. Each one's variable, default, range and meaning are in SETTINGS below, from
 * which docs/operations.md's table is generated (`npm run docs:config`; a unit test fails when it is stale).
 */
export interface Config {
  stateDir: string;
  binCacheDir: string;
  /** How long each embedded server may take to answer after it is spawned. */
  startTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  temporal: { address: string; namespace: string; uiPort: number };
  databaseUrl: string | undefined;
  embeddedPostgresPort: number;
  minio: { endPoint: string; port: number; useSSL: boolean; accessKey: string; secretKey: string; bucket: string; consolePort: number };
  taskQueues: { cpu: string; inference: string; review: string; models: string };
  inference: {
    /** Execution providers in preference order; the first that loads a model is used (and logged). */
    providers: string[];
    intraOpThreads: number;
    batchSize: number;
    maxConcurrentActivities: number;
    cacheMaxSessions: number;
    cacheMaxBytes: number;
  };
  worker: { shutdownGraceMs: number; maxConcurrentActivities: number };
  intake: { maxConcurrentBatches: number };
  /** AES-256-GCM keys for Temporal payloads (first encodes, all decode); undefined: payloads in clear. */
  payloadKeys: PayloadKey[] | undefined;
  observability: {
    /** Where a process serves /metrics, /health and /health/live; undefined: not served. 0: any free port. */
    metricsPort: number | undefined;
    metricsHost: string;
    /** OTLP/HTTP traces endpoint (e.g. http://collector:4318); undefined: no traces exported. */
    otlpEndpoint: string | undefined;
  };
  http: {
    host: string;
    port: number;
    /** HS256 secret for reviewer tokens; unset: a random one is created under the state dir on first use. */
    jwtSecret: string | undefined;
    /** Where the CLI finds the server. */
    serverUrl: string;
    /** The CLI's bearer token (`qcflow token issue` makes one). */
    token: string | undefined;
    /** Browser origins (the Temporal UI) allowed to call the review server's /codec endpoint. */
    codecOrigins: string[];
  };
}

export interface SettingDoc {
  env: string;
  /** What loadConfig uses when the variable is unset or empty; `(…)` where there is none, or it is worked out. */
  default: string;
  description: string;
  /** An integer setting's allowed range. */
  int?: [min: number, max: number];
  /** The value a child process (worker, test) gets to reach the same stack (configToEnv); absent: it inherits the variable. */
  child?: (cfg: Config, databaseUrl: string) => string;
}

/** The one table of settings: docs/operations.md, loadConfig's defaults and ranges, and configToEnv come from it. */
export const SETTINGS: SettingDoc[] = [
  { env: 'QCFLOW_STATE_DIR', default: './.qcflow', description: 'Where the embedded stack keeps its data (Temporal SQLite, MinIO, Postgres).', child: (c) => c.stateDir },
  { env: 'QCFLOW_BIN_CACHE', default: '~/.cache/qcflow/bin', description: 'Where `go install` puts the temporal and minio binaries when they are not on PATH.', child: (c) => c.binCacheDir },
  { env: 'QCFLOW_START_TIMEOUT_S', default: '300', description: 'How long each embedded server (Temporal, MinIO, Postgres) may take to answer after it starts; progress is logged every 5 s and a failure shows the end of its log.', int: [1, 86_400], child: (c) => String(c.startTimeoutMs / 1000) },
  { env: 'QCFLOW_LOG_LEVEL', default: 'info', description: 'pino level: fatal, error, warn, info, debug, trace, silent.', child: (c) => c.logLevel },
  { env: 'TEMPORAL_ADDRESS', default: '127.0.0.1:7233', description: 'Temporal frontend (host:port).', child: (c) => c.temporal.address },
  { env: 'TEMPORAL_NAMESPACE', default: 'default', description: 'Temporal namespace.', child: (c) => c.temporal.namespace },
  { env: 'TEMPORAL_UI_PORT', default: '8233', description: 'Port of the dev server Web UI.', int: [1, 65535], child: (c) => String(c.temporal.uiPort) },
  { env: 'DATABASE_URL', default: '(unset)', description: 'Postgres URL. When unset or unreachable, an embedded server is started under the state dir.', child: (_c, databaseUrl) => databaseUrl },
  { env: 'QCFLOW_PG_PORT', default: '5433', description: 'Port of the embedded Postgres.', int: [1, 65535], child: (c) => String(c.embeddedPostgresPort) },
  { env: 'MINIO_ENDPOINT', default: '127.0.0.1', description: 'MinIO host.', child: (c) => c.minio.endPoint },
  { env: 'MINIO_PORT', default: '9000', description: 'MinIO S3 port.', int: [1, 65535], child: (c) => String(c.minio.port) },
  { env: 'MINIO_CONSOLE_PORT', default: '9001', description: 'MinIO console port (embedded server only).', int: [1, 65535], child: (c) => String(c.minio.consolePort) },
  { env: 'MINIO_USE_SSL', default: 'false', description: 'Use TLS to reach MinIO.', child: (c) => String(c.minio.useSSL) },
  { env: 'MINIO_ACCESS_KEY', default: '(generated)', description: 'MinIO access key (root user of the embedded server). Unset: the key generated for a new data dir, kept in `<state dir>/minio-credentials.json` (`qcflow` for a data dir from before).', child: (c) => c.minio.accessKey },
  { env: 'MINIO_SECRET_KEY', default: '(generated)', description: 'MinIO secret key (at least 8 characters). Unset: generated with the access key (`qcflow-secret` for a data dir from before).', child: (c) => c.minio.secretKey },
  { env: 'MINIO_BUCKET', default: 'qcflow', description: 'Bucket holding raw/, staging/, releases/, models/, golden/.', child: (c) => c.minio.bucket },
  { env: 'QCFLOW_QUEUE_CPU', default: 'qc-cpu', description: 'Task queue of the CPU worker (layers 1,2,4,5, storage, release).', child: (c) => c.taskQueues.cpu },
  { env: 'QCFLOW_QUEUE_INFERENCE', default: 'qc-inference', description: 'Task queue of the inference worker (layer 3).', child: (c) => c.taskQueues.inference },
  { env: 'QCFLOW_QUEUE_REVIEW', default: 'qc-review', description: 'Task queue of the human-task activities reviewers complete.', child: (c) => c.taskQueues.review },
  { env: 'QCFLOW_QUEUE_MODELS', default: 'models', description: 'Task queue of the models worker (quantization).', child: (c) => c.taskQueues.models },
  { env: 'QCFLOW_ORT_PROVIDERS', default: 'cpu', description: 'onnxruntime execution providers in preference order, e.g. `cuda,cpu`; the first that loads a model is used and logged.', child: (c) => c.inference.providers.join(',') },
  { env: 'QCFLOW_ORT_INTRA_OP_THREADS', default: '0', description: 'onnxruntime intra-op threads per session (0: onnxruntime picks).', int: [0, 1024], child: (c) => String(c.inference.intraOpThreads) },
  { env: 'QCFLOW_INFERENCE_BATCH_SIZE', default: '64', description: 'Samples per `session.run` in layer 3 (the batch dimension is dynamic).', int: [1, 65536], child: (c) => String(c.inference.batchSize) },
  { env: 'QCFLOW_INFERENCE_CONCURRENCY', default: '2', description: 'Layer-3 activities an inference worker runs at once.', int: [1, 256], child: (c) => String(c.inference.maxConcurrentActivities) },
  { env: 'QCFLOW_SESSION_CACHE_MAX', default: '4', description: 'Most onnxruntime sessions an inference worker keeps loaded (LRU).', int: [1, 1000], child: (c) => String(c.inference.cacheMaxSessions) },
  { env: 'QCFLOW_SESSION_CACHE_MAX_BYTES', default: '2147483648', description: 'Bound on the summed model sizes of loaded sessions (LRU).', int: [1, Number.MAX_SAFE_INTEGER], child: (c) => String(c.inference.cacheMaxBytes) },
  { env: 'QCFLOW_SHUTDOWN_GRACE_MS', default: '30000', description: 'How long a worker lets in-flight activities finish after SIGTERM.', int: [0, 3_600_000] },
  { env: 'QCFLOW_MAX_CONCURRENT_ACTIVITIES', default: '8', description: 'Activity slots per worker.', int: [1, 1000] },
  { env: 'QCFLOW_MAX_CONCURRENT_BATCHES', default: '4', description: 'qcBatch children an intake workflow runs at once.', int: [1, 100] },
  { env: 'QCFLOW_METRICS_PORT', default: '(unset)', description: 'Port where a worker process or the review server serves /metrics (Prometheus), /health (readiness) and /health/live; unset: not served; 0: any free port (logged). Give each process on a host its own.', int: [0, 65535] },
  { env: 'QCFLOW_METRICS_HOST', default: '127.0.0.1', description: 'Address the /metrics and /health endpoint listens on (0.0.0.0 in a container, for the scraper and the kubelet).' },
  { env: 'OTEL_EXPORTER_OTLP_ENDPOINT', default: '(unset)', description: 'OpenTelemetry collector (OTLP over HTTP, e.g. http://collector:4318): traces of every workflow and activity are exported there; unset: none exported.' },
  { env: 'QCFLOW_PAYLOAD_KEYS', default: '(unset)', description: 'Encrypts every Temporal payload (inputs, signals, results, history) with AES-256-GCM: `keyId:base64key[,keyId:base64key…]`, 32-byte keys (`openssl rand -base64 32`); the first encodes, all decode (rotation: put the new key first). Every worker, client and the review server need the same list. Unset: payloads in clear.' },
  { env: 'QCFLOW_CODEC_ORIGINS', default: 'http://127.0.0.1:8233,http://localhost:8233', description: 'Browser origins (the Temporal UI) allowed to call the review server\'s /codec/decode with an operator token.' },
  { env: 'QCFLOW_HTTP_HOST', default: '127.0.0.1', description: 'Address the review server (web page and JSON API) listens on.' },
  { env: 'QCFLOW_HTTP_PORT', default: '8080', description: 'Port of the review server.', int: [0, 65535] },
  { env: 'QCFLOW_JWT_SECRET', default: '(generated)', description: 'HS256 secret that signs reviewer tokens (32+ characters). Unset: a random one is kept in `<state dir>/jwt-secret`.' },
  { env: 'QCFLOW_SERVER_URL', default: 'http://127.0.0.1:8080', description: 'Where `qcflow review …` finds the review server.' },
  { env: 'QCFLOW_TOKEN', default: '(unset)', description: 'Bearer token `qcflow review …` sends (make one with `qcflow token issue`). One with a registry role (`--model-role`) also limits `qcflow model …` to its tenant and role.' },
];

/** The Configuration table of docs/operations.md, generated from SETTINGS (`npm run docs:config`). */
export function settingsTable(settings: SettingDoc[] = SETTINGS): string {
  const cell = (v: string): string => v.replace(/\|/g, '\\|');
  const value = (v: string): string => (/^\(.*\)$/.test(v) ? v : `\`${v}\``);
  return ['| variable | default | meaning |', '|---|---|---|', ...settings.map((s) => `| \`${s.env}\` | ${cell(value(s.default))} | ${cell(s.description)} |`)].join('\n');
}

const TABLE_START = '<!-- generated from SETTINGS in src/clients/config.ts by `npm run docs:config`; do not edit by hand -->';
const TABLE_END = '<!-- end of generated table -->';

/** A document with its generated settings table replaced by the current one; throws when the markers are missing. */
export function replaceSettingsTable(doc: string): string {
  const start = doc.indexOf(TABLE_START);
  const end = doc.indexOf(TABLE_END);
  if (start < 0 || end < start) throw new Error(`the configuration table's markers are missing: ${TABLE_START} … ${TABLE_END}`);
  return `${doc.slice(0, start + TABLE_START.length)}\n${settingsTable()}\n${doc.slice(end)}`;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function payloadKeys(env: Env): PayloadKey[] | undefined {
  if (!env.QCFLOW_PAYLOAD_KEYS) return undefined;
  try {
    return parsePayloadKeys(env.QCFLOW_PAYLOAD_KEYS);
  } catch (err) {
    if (err instanceof PayloadKeyError) throw new ConfigError(err.message);
    throw err;
  }
}

type Env = Record<string, string | undefined>;

const SETTING = new Map(SETTINGS.map((x) => [x.env, x]));

function setting(key: string): SettingDoc {
  const x = SETTING.get(key);
  if (!x) throw new Error(`${key} is not in SETTINGS (src/clients/config.ts)`);
  return x;
}

/** The table's default: `~/` is the home directory. */
function defaultOf(key: string): string {
  const d = setting(key).default;
  return d.startsWith('~/') ? path.join(os.homedir(), d.slice(2)) : d;
}

/** The variable, or `fallback` (the table's default unless given) when it is unset or empty. */
function str(env: Env, key: string, fallback = defaultOf(key)): string {
  const v = env[key];
  return v === undefined || v === '' ? fallback : v;
}

/** An integer in the table's range, or the table's default when unset or empty. */
function int(env: Env, key: string): number {
  const range = setting(key).int;
  if (!range) throw new Error(`${key} has no integer range in SETTINGS (src/clients/config.ts)`);
  const [min, max] = range;
  const raw = env[key];
  if (raw === undefined || raw === '') return Number(defaultOf(key));
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${key}=${JSON.stringify(raw)} must be an integer in [${min}, ${max}]`);
  }
  return n;
}

function bool(env: Env, key: string): boolean {
  const raw = str(env, key);
  if (/^(1|true|yes)$/i.test(raw)) return true;
  if (/^(0|false|no)$/i.test(raw)) return false;
  throw new ConfigError(`${key}=${JSON.stringify(raw)} must be true or false`);
}

const PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'dml', 'coreml', 'webgpu'];

function providers(env: Env): string[] {
  const list = str(env, 'QCFLOW_ORT_PROVIDERS').split(',').map((p) => p.trim().toLowerCase()).filter(Boolean);
  const bad = list.filter((p) => !PROVIDERS.includes(p));
  if (list.length === 0 || bad.length) throw new ConfigError(`QCFLOW_ORT_PROVIDERS=${JSON.stringify(env.QCFLOW_ORT_PROVIDERS)}: ${bad.join(', ') || 'empty'}; use a comma list of ${PROVIDERS.join(', ')}`);
  return list;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function loadConfig(env: Env = process.env): Config {
  const logLevel = str(env, 'QCFLOW_LOG_LEVEL');
  if (!(LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`QCFLOW_LOG_LEVEL=${JSON.stringify(logLevel)} must be one of ${LEVELS.join(', ')}`);
  }
  const stateDir = path.resolve(str(env, 'QCFLOW_STATE_DIR'));
  // Keys the embedded MinIO was created with (see minioCredentialsFile), unless the environment names some.
  const generated = env.MINIO_ACCESS_KEY || env.MINIO_SECRET_KEY ? undefined : readMinioCredentials(stateDir);
  const secretKey = str(env, 'MINIO_SECRET_KEY', generated?.secretKey ?? 'qcflow-secret');
  if (secretKey.length < 8) throw new ConfigError('MINIO_SECRET_KEY must be at least 8 characters (MinIO refuses shorter ones)');
  const address = str(env, 'TEMPORAL_ADDRESS');
  if (!/^[^:\s]+:\d+$/.test(address)) throw new ConfigError(`TEMPORAL_ADDRESS=${JSON.stringify(address)} must be host:port`);
  const jwtSecret = env.QCFLOW_JWT_SECRET || undefined;
  if (jwtSecret !== undefined && jwtSecret.length < 32) throw new ConfigError('QCFLOW_JWT_SECRET must be at least 32 characters (an HS256 key shorter than its hash is guessable); or unset it to use a generated one');
  const bucket = str(env, 'MINIO_BUCKET');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new ConfigError(`MINIO_BUCKET=${JSON.stringify(bucket)} is not a valid S3 bucket name`);
  return {
    stateDir,
    binCacheDir: path.resolve(str(env, 'QCFLOW_BIN_CACHE')),
    startTimeoutMs: int(env, 'QCFLOW_START_TIMEOUT_S') * 1000,
    logLevel: logLevel as Config['logLevel'],
    temporal: {
      address,
      namespace: str(env, 'TEMPORAL_NAMESPACE'),
      uiPort: int(env, 'TEMPORAL_UI_PORT'),
    },
    databaseUrl: env.DATABASE_URL || undefined,
    embeddedPostgresPort: int(env, 'QCFLOW_PG_PORT'),
    minio: {
      endPoint: str(env, 'MINIO_ENDPOINT'),
      port: int(env, 'MINIO_PORT'),
      consolePort: int(env, 'MINIO_CONSOLE_PORT'),
      useSSL: bool(env, 'MINIO_USE_SSL'),
      accessKey: str(env, 'MINIO_ACCESS_KEY', generated?.accessKey ?? 'qcflow'),
      secretKey,
      bucket,
    },
    taskQueues: { cpu: str(env, 'QCFLOW_QUEUE_CPU'), inference: str(env, 'QCFLOW_QUEUE_INFERENCE'), review: str(env, 'QCFLOW_QUEUE_REVIEW'), models: str(env, 'QCFLOW_QUEUE_MODELS') },
    inference: {
      providers: providers(env),
      intraOpThreads: int(env, 'QCFLOW_ORT_INTRA_OP_THREADS'),
      batchSize: int(env, 'QCFLOW_INFERENCE_BATCH_SIZE'),
      maxConcurrentActivities: int(env, 'QCFLOW_INFERENCE_CONCURRENCY'),
      cacheMaxSessions: int(env, 'QCFLOW_SESSION_CACHE_MAX'),
      cacheMaxBytes: int(env, 'QCFLOW_SESSION_CACHE_MAX_BYTES'),
    },
    worker: {
      shutdownGraceMs: int(env, 'QCFLOW_SHUTDOWN_GRACE_MS'),
      maxConcurrentActivities: int(env, 'QCFLOW_MAX_CONCURRENT_ACTIVITIES'),
    },
    intake: {
      maxConcurrentBatches: int(env, 'QCFLOW_MAX_CONCURRENT_BATCHES'),
    },
    payloadKeys: payloadKeys(env),
    observability: {
      metricsPort: env.QCFLOW_METRICS_PORT ? int(env, 'QCFLOW_METRICS_PORT') : undefined,
      metricsHost: str(env, 'QCFLOW_METRICS_HOST'),
      otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined,
    },
    http: {
      host: str(env, 'QCFLOW_HTTP_HOST'),
      port: int(env, 'QCFLOW_HTTP_PORT'),
      jwtSecret,
      serverUrl: str(env, 'QCFLOW_SERVER_URL').replace(/\/+$/, ''),
      token: env.QCFLOW_TOKEN || undefined,
      codecOrigins: str(env, 'QCFLOW_CODEC_ORIGINS').split(',').map((o) => o.trim().replace(/\/+$/, '')).filter(Boolean),
    },
  };
}

/**
 * Root keys generated for an embedded MinIO created by this version (0600): the fixed defaults let any
 * local user read every project's data. A data dir created with the defaults keeps them (MinIO's stored
 * configuration is encrypted with its root keys).
 */
export const minioCredentialsFile = (stateDir: string): string => path.join(stateDir, 'minio-credentials.json');

/** A generated-credentials file, or undefined where none was written. */
function readJsonFile<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

function readMinioCredentials(stateDir: string): { accessKey: string; secretKey: string } | undefined {
  return readJsonFile(minioCredentialsFile(stateDir));
}

/** Where an embedded cluster's generated logins are kept (0600); see startPostgres. */
export const postgresCredentialsFile = (stateDir: string): string => path.join(stateDir, 'postgres-credentials.json');

export interface PostgresCredentials {
  /** The cluster's superuser, for creating the database and role only. */
  admin: { user: string; password: string };
  /** What qcflow connects as: owns the qcflow database, no superuser rights. */
  app: { user: string; password: string };
}

/**
 * The embedded Postgres URL used when DATABASE_URL is not set: the application role with its generated
 * password, or, for a cluster created before logins were generated (trust auth), the old fixed one.
 */
export function embeddedDatabaseUrl(cfg: Config): string {
  return postgresUrl(cfg.embeddedPostgresPort, 'qcflow', readPostgresCredentials(cfg.stateDir)?.app);
}

export function readPostgresCredentials(stateDir: string): PostgresCredentials | undefined {
  return readJsonFile<PostgresCredentials>(postgresCredentialsFile(stateDir));
}

/** The embedded server's URL for a login, or for the fixed one of a cluster from before logins were generated (trust auth). */
export function postgresUrl(port: number, database: string, login?: { user: string; password: string }): string {
  const userinfo = login ? `${encodeURIComponent(login.user)}:${encodeURIComponent(login.password)}` : 'qcflow:qcflow';
  return `postgres://${userinfo}@127.0.0.1:${port}/${database}`;
}

/** Where a CLI command, a worker process or the review server finds Postgres: DATABASE_URL, else the embedded one (where `qcflow dev` starts it). */
export function databaseUrlOf(cfg: Config): string {
  return cfg.databaseUrl ?? embeddedDatabaseUrl(cfg);
}

/** The variables a child process (worker, test) needs to reach the same stack: the settings with a `child` value. */
export function configToEnv(cfg: Config, databaseUrl: string): Record<string, string> {
  return Object.fromEntries(SETTINGS.flatMap((x) => (x.child ? [[x.env, x.child(cfg, databaseUrl)]] : [])));
}
