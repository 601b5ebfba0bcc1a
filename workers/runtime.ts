import { Runtime } from '@temporalio/worker';
import { getLogger, temporalLogger } from '../src/clients/logger';
import type { Config } from '../src/clients/config';

let installed = false;

/** Routes the Temporal SDK's own logs (worker, workflow and activity loggers) into pino. Once per process. */
export function installRuntimeLogger(cfg: Config): void {
  if (installed) return;
  installed = true;
  Runtime.install({ logger: temporalLogger(getLogger(cfg, 'temporal')), shutdownSignals: [] });
}
