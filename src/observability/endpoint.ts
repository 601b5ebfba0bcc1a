import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../clients/logger';
import type { HealthReport } from './health';
import { collectProcessMetrics, registry } from './metrics';

export interface ObservabilityEndpoint {
  url: string;
  close(): Promise<void>;
}

export interface EndpointOptions {
  host: string;
  /** 0: any free port (logged). */
  port: number;
  /** Readiness: what /health reports (503 when not ok). */
  health: () => Promise<HealthReport>;
  /** Liveness: false once the process cannot do its work any more (a failed worker); /health/live then answers 503. */
  alive: () => boolean;
  /** The Temporal SDK's own Prometheus exporter in this process, appended to /metrics so one scrape gets both. */
  sdkMetricsUrl?: string;
  log: Logger;
}

/**
 * A process's /metrics (Prometheus text: qcflow's registry, then the Temporal SDK's), /health (readiness,
 * JSON) and /health/live (liveness), on their own port: they carry no credentials, so they stay off the
 * review server's public port and are exposed to the scraper and the kubelet only.
 */
export async function startObservabilityEndpoint(o: EndpointOptions): Promise<ObservabilityEndpoint> {
  collectProcessMetrics();
  const server = createServer((req, res) => {
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    };
    const route = (req.url ?? '/').split('?')[0];
    const work = async (): Promise<void> => {
      if (req.method !== 'GET') return reply(405, 'text/plain', 'GET only\n');
      if (route === '/metrics') {
        const own = await registry.metrics();
        const sdk = o.sdkMetricsUrl ? await fetch(o.sdkMetricsUrl, { signal: AbortSignal.timeout(2000) }).then((r) => r.text()).catch(() => '') : '';
        return reply(200, registry.contentType, `${own}\n${sdk}`);
      }
      if (route === '/health') {
        const h = await o.health();
        return reply(h.ok ? 200 : 503, 'application/json', `${JSON.stringify(h)}\n`);
      }
      if (route === '/health/live') return reply(o.alive() ? 200 : 503, 'application/json', `${JSON.stringify({ ok: o.alive() })}\n`);
      return reply(404, 'text/plain', 'try /metrics, /health or /health/live\n');
    };
    work().catch((err: unknown) => {
      o.log.error({ err, route }, 'observability endpoint failed');
      if (!res.headersSent) reply(500, 'text/plain', `${(err as Error).message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new Error(`metrics port ${o.port} is in use: give each process its own QCFLOW_METRICS_PORT (0 picks a free one)`) : err));
    server.listen(o.port, o.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${o.host}:${port}`;
  o.log.info({ metrics: `${url}/metrics`, health: `${url}/health` }, 'observability endpoint listening');
  return {
    url,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
