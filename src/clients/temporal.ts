import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { AesGcmPayloadCodec } from './payload-codec';
import type { Config } from './config';
import { installTracing, tracingPlugins } from '../observability/tracing';

/** A client of this process's Temporal namespace; traced where tracing is configured (OTEL_EXPORTER_OTLP_ENDPOINT). */
export async function createTemporalClient(cfg: Config): Promise<{ client: Client; connection: Connection }> {
  installTracing(cfg, 'client');
  const connection = await Connection.connect({ address: cfg.temporal.address });
  const client = new Client({ connection, namespace: cfg.temporal.namespace, plugins: tracingPlugins(), dataConverter: dataConverterOf(cfg) });
  return { client, connection };
}

/** Where QCFLOW_PAYLOAD_KEYS is set, payloads are sealed before they leave this process (clients and workers alike). */
export function dataConverterOf(cfg: Pick<Config, 'payloadKeys'>): DataConverter | undefined {
  return cfg.payloadKeys ? { payloadCodecs: [new AesGcmPayloadCodec(cfg.payloadKeys)] } : undefined;
}
