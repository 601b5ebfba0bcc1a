import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Config } from '../clients/config';
import { putObject, type ObjectStore } from '../clients/minio';
import { stagingKey } from '../ingest/keys';
import { projectIntake, qcBatch } from '../../workflows';
import { intakeMetadata } from '../../workflows/metadata';
import {
  addCounts, submitBatchSignal, workflowIds, ZERO_COUNTS, type BatchCounts, type BatchRef,
} from '../../workflows/definitions';

export interface IngestProgress {
  phase: 'staging' | 'qc';
  done: number;
  total: number;
  counts?: BatchCounts;
}

export interface IngestOptions {
  project: string;
  file: string;
  batchSize: number;
  wait: boolean;
  onProgress?: (p: IngestProgress) => void;
}

export interface IngestResult {
  batches: BatchRef[];
  counts: BatchCounts;
  failedBatches: string[];
}

async function fileDigest(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Stages a JSONL file to MinIO in chunks of `batchSize` lines and signals the project's intake workflow
 * (signal-with-start) once per chunk. Batch ids derive from the file's sha256, so ingesting the same file
 * twice submits the same batches and the second time is a no-op.
 */
export async function ingestFile(cfg: Config, client: Client, store: ObjectStore, o: IngestOptions): Promise<IngestResult> {
  const size = statSync(o.file).size;
  const digest = (await fileDigest(o.file)).slice(0, 16);
  const batches: BatchRef[] = [];
  let buf: string[] = [];
  let bytesDone = 0;
  const flush = async (): Promise<void> => {
    if (buf.length === 0) return;
    const batchId = `${digest}-${String(batches.length).padStart(5, '0')}`;
    const ref: BatchRef = { batchId, stagingKey: stagingKey(o.project, batchId) };
    await putObject(store, ref.stagingKey, Buffer.from(buf.join('\n') + '\n', 'latin1'), 'application/x-ndjson');
    await client.workflow.signalWithStart(projectIntake, {
      workflowId: workflowIds.intake(o.project),
      taskQueue: cfg.taskQueues.cpu,
      args: [{ project: o.project, maxConcurrentBatches: cfg.intake.maxConcurrentBatches }],
      ...intakeMetadata(o.project),
      signal: submitBatchSignal,
      signalArgs: [ref],
    });
    batches.push(ref);
    buf = [];
  };
  // Lines are split as bytes (latin1: one character per byte) and staged unchanged, so stageBatch sees
  // exactly what the file holds and can refuse invalid UTF-8 instead of finding U+FFFD in its place.
  for await (const line of createInterface({ input: createReadStream(o.file, { encoding: 'latin1' }), crlfDelay: Infinity })) {
    bytesDone += line.length + 1;
    if (line.trim() === '') continue;
    buf.push(line);
    if (buf.length >= o.batchSize) {
      await flush();
      o.onProgress?.({ phase: 'staging', done: Math.min(bytesDone, size), total: size });
    }
  }
  await flush();
  o.onProgress?.({ phase: 'staging', done: size, total: size });
  if (!o.wait) return { batches, counts: { ...ZERO_COUNTS }, failedBatches: [] };
  return { batches, ...(await waitForBatches(client, o.project, batches, o.onProgress)) };
}

/** Polls each batch's qcBatch workflow until all have closed, reporting summed counts as they finish. */
export async function waitForBatches(
  client: Client, project: string, batches: BatchRef[], onProgress?: (p: IngestProgress) => void,
): Promise<{ counts: BatchCounts; failedBatches: string[] }> {
  const pending = new Set(batches.map((b) => b.batchId));
  let counts = { ...ZERO_COUNTS };
  const failedBatches: string[] = [];
  onProgress?.({ phase: 'qc', done: 0, total: batches.length, counts });
  while (pending.size > 0) {
    for (const batchId of [...pending]) {
      const handle = client.workflow.getHandle<typeof qcBatch>(workflowIds.qcBatch(project, batchId));
      let status: string;
      try {
        status = (await handle.describe()).status.name;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) continue; // still queued in the intake workflow
        throw err;
      }
      if (status === 'RUNNING') continue;
      pending.delete(batchId);
      if (status === 'COMPLETED') counts = addCounts(counts, await handle.result());
      else failedBatches.push(`${batchId} (${status})`);
      onProgress?.({ phase: 'qc', done: batches.length - pending.size, total: batches.length, counts });
    }
    if (pending.size > 0) await new Promise((r) => setTimeout(r, 500));
  }
  return { counts, failedBatches };
}
