import { Client } from 'minio';
import type { Readable } from 'node:stream';
import type { Config } from './config';

export type ObjectStore = {
  client: Client;
  bucket: string;
};

export function createObjectStore(cfg: Config['minio']): ObjectStore {
  const client = new Client({
    endPoint: cfg.endPoint,
    port: cfg.port,
    useSSL: cfg.useSSL,
    accessKey: cfg.accessKey,
    secretKey: cfg.secretKey,
  });
  return { client, bucket: cfg.bucket };
}

export async function ensureBucket(store: ObjectStore): Promise<void> {
  if (!(await store.client.bucketExists(store.bucket))) {
    try {
      await store.client.makeBucket(store.bucket);
    } catch (err) {
      // Two processes may race to create it; losing the race is fine.
      if (!(await store.client.bucketExists(store.bucket))) throw err;
    }
  }
}

export async function getObjectStream(store: ObjectStore, key: string): Promise<Readable> {
  return store.client.getObject(store.bucket, key);
}

export async function getObjectBuffer(store: ObjectStore, key: string): Promise<Buffer> {
  const stream = await getObjectStream(store, key);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function getObjectText(store: ObjectStore, key: string): Promise<string> {
  return (await getObjectBuffer(store, key)).toString('utf8');
}

/**
 * The object's bytes, or undefined when the key does not exist. Any other error (MinIO unreachable) is
 * thrown, so an activity retries it rather than mistaking an outage for a missing object.
 */
export async function getObjectBufferIfExists(store: ObjectStore, key: string): Promise<Buffer | undefined> {
  try {
    return await getObjectBuffer(store, key);
  } catch (err) {
    if (isMissingObject(err)) return undefined;
    throw err;
  }
}

/** True for the errors MinIO gives for a key that is not there (as opposed to an unreachable server). */
export function isMissingObject(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'NotFound' || code === 'NoSuchKey';
}

export async function putObject(store: ObjectStore, key: string, body: Buffer | string | Readable, contentType: string): Promise<void> {
  await store.client.putObject(store.bucket, key, body, undefined, { 'Content-Type': contentType });
}

export async function objectExists(store: ObjectStore, key: string): Promise<boolean> {
  try {
    await store.client.statObject(store.bucket, key);
    return true;
  } catch (err) {
    if (isMissingObject(err)) return false;
    throw err;
  }
}
