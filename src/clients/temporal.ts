import { Client, Connection } from '@temporalio/client';
import type { Config } from './config';

export async function createTemporalClient(cfg: Config): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address: cfg.temporal.address });
  const client = new Client({ connection, namespace: cfg.temporal.namespace });
  return { client, connection };
}
