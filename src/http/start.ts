import { databaseUrlOf, type Config } from '../clients/config';
import type { Logger } from '../clients/logger';
import { createObjectStore, type ObjectStore } from '../clients/minio';
import { createPool, type Pool } from '../clients/pg';
import { AesGcmPayloadCodec } from '../clients/payload-codec';
import type { Client } from '@temporalio/client';
import { collectReviewQueue } from '../observability/collectors';
import { startObservabilityEndpoint, type ObservabilityEndpoint } from '../observability/endpoint';
import { checkHealth } from '../observability/health';
import { createTemporalClient } from '../clients/temporal';
import { ReviewService } from '../review/service';
import { ModelRegistryService } from '../models/registry-service';
import { issueToken, resolveJwtSecret, tokenVerifier } from './auth';
import { passwordSignIn } from './sign-in';
import { buildServer } from './server';

/** How long a password sign-in lasts; the page keeps an unsent decision if it runs out mid-task. */
const SESSION_SECONDS = 8 * 3600;

export interface RunningServer {
  url: string;
  /** Where its /metrics and /health are served (QCFLOW_METRICS_PORT set). */
  metricsUrl?: string;
  close(): Promise<void>;
}

/** Starts the review server on cfg.http (port 0: any free port) with its own Postgres pool and Temporal client. */
export async function startReviewServer(cfg: Config, log: Logger): Promise<RunningServer> {
  const pool = createPool(databaseUrlOf(cfg), 8);
  const temporal = await createTemporalClient(cfg).catch(async (err: unknown) => {
    await pool.end();
    throw err;
  });
  const store = createObjectStore(cfg.minio);
  const reviews = new ReviewService({ pool, store, temporal: temporal.client, log });
  const secret = resolveJwtSecret(cfg);
  const app = await buildServer({
    reviews, models: new ModelRegistryService(pool), verify: tokenVerifier(secret), log: log.child({ component: 'http' }),
    signIn: passwordSignIn(pool), issue: (actor) => issueToken(secret, { ...actor, ttlSeconds: SESSION_SECONDS }),
    codec: cfg.payloadKeys ? { codec: new AesGcmPayloadCodec(cfg.payloadKeys), origins: cfg.http.codecOrigins } : undefined,
  });
  try {
    await app.listen({ host: cfg.http.host, port: cfg.http.port });
  } catch (err) {
    await temporal.connection.close();
    await pool.end();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new Error(`port ${cfg.http.port} is in use: stop what runs there or set QCFLOW_HTTP_PORT`);
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : cfg.http.port;
  const url = `http://${cfg.http.host}:${port}`;
  log.info({ url }, 'review server listening');
  const observability = await observe(cfg, log, pool, store, temporal.client).catch(async (err: unknown) => {
    await app.close();
    await temporal.connection.close();
    await pool.end();
    throw err;
  });
  return {
    url,
    metricsUrl: observability?.url,
    async close() {
      await observability?.close();
      await app.close();
      await temporal.connection.close().catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
}

/** Where QCFLOW_METRICS_PORT is set: the review queue's gauges and the server's own /metrics and /health. */
async function observe(cfg: Config, log: Logger, pool: Pool, store: ObjectStore, client: Client): Promise<ObservabilityEndpoint | undefined> {
  if (cfg.observability.metricsPort === undefined) return undefined;
  collectReviewQueue(pool);
  const temporal = { service: client.workflowService, namespace: cfg.temporal.namespace };
  return startObservabilityEndpoint({
    host: cfg.observability.metricsHost, port: cfg.observability.metricsPort, log,
    health: () => checkHealth({ pool, store, temporal }), alive: () => true,
  });
}
