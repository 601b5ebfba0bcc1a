import { Client, Connection } from '@temporalio/client';
import type { Config } from './config';
import { installTracing, tracingPlugins } from '../observability/tracing';

/** A client of this process's Temporal namespace; traced where tracing is configured (OTEL_EXPORTER_OTLP_ENDPOINT). */
export async function createTemporalClient(cfg: Config): Promise<{ client: Client; connection: Connection }> {
  installTracing(cfg, 'client');
  const connection = await Connection.connect({ address: cfg.temporal.address });
  const client = new Client({ connection, namespace: cfg.temporal.namespace, plugins: tracingPlugins() });
  return { client, connection };
}
