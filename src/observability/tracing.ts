import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryPlugin } from '@temporalio/interceptors-opentelemetry';
import type { Config } from '../clients/config';

let plugin: OpenTelemetryPlugin | undefined;
let provider: BasicTracerProvider | undefined;

/**
 * Tracing for this process: the Temporal SDK's OpenTelemetry interceptors on every client and worker it
 * creates afterwards (client → workflow → child workflow → activity, one trace from the ingest's signal to
 * the last activity of each batch), spans to `processor`, or over OTLP/HTTP where
 * OTEL_EXPORTER_OTLP_ENDPOINT is set. Off otherwise: no interceptors, no cost. Once per process.
 */
export function installTracing(cfg: Pick<Config, 'observability'>, component: string, processor?: SpanProcessor): OpenTelemetryPlugin | undefined {
  if (plugin) return plugin;
  const endpoint = cfg.observability.otlpEndpoint;
  if (!processor && !endpoint) return undefined;
  const spanProcessor = processor ?? new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint!.replace(/\/+$/, '')}/v1/traces` }));
  const resource = new Resource({ 'service.name': 'qcflow', 'service.component': component, 'process.pid': process.pid });
  provider = new BasicTracerProvider({ resource });
  provider.addSpanProcessor(spanProcessor);
  // Activities and the client run in this process's async context: spans follow awaits through it.
  provider.register({ contextManager: new AsyncLocalStorageContextManager() });
  plugin = new OpenTelemetryPlugin({ resource, spanProcessor });
  return plugin;
}

/** The plugins a client or worker of this process gets: the tracing plugin once installed, else none. */
export function tracingPlugins(): OpenTelemetryPlugin[] {
  return plugin ? [plugin] : [];
}

/** Flushes spans not yet exported (at shutdown). */
export async function flushTracing(): Promise<void> {
  await provider?.forceFlush();
}
