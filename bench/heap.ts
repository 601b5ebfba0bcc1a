/**
 * `npm run bench -- heap`: does the qc-cpu worker keep memory per sample? The worker runs as its own process
 * on an ephemeral stack; after 2k, then 20k, then 80k more samples it writes a heap snapshot (which a full
 * GC precedes, so the snapshot holds what is retained, not garbage not yet collected), and the snapshot sizes
 * are printed with the process's RSS at that moment. Flat sizes: nothing accumulates in the main isolate.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import pino from 'pino';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../src/clients/config';
import { createObjectStore } from '../src/clients/minio';
import { createPool } from '../src/clients/pg';
import { ingestFile } from '../src/cli/ingest';
import { startQcflowProcesses, type ClusterMember } from '../src/infra/cluster';
import { startStack } from '../src/infra/stack';
import { validateProjectDefinition } from '../src/projects/definition';
import { upsertProject } from '../src/store/projects';
import * as path from 'node:path';
import * as os from 'node:os';
const log = pino({ level: 'silent' });
export async function heapBench(): Promise<void> {
  const snapDir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-heap-'));
  process.env.NODE_OPTIONS = `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapDir}`;
  const stack = await startStack(loadConfig(), log, { ephemeral: true });
  const members: ClusterMember[] = [];
  const pool = createPool(stack.databaseUrl, 4);
  const store = createObjectStore(stack.cfg.minio);
  const connection = await Connection.connect({ address: stack.cfg.temporal.address });
  const client = new Client({ connection, namespace: stack.cfg.temporal.namespace });
  try {
    await startQcflowProcesses({ ...stack.cfg }, stack.databaseUrl, [{ name: 'qc-cpu', role: 'cpu' }], log, (x) => members.push(x));
    const cpu = members[0]!;
    const snap = async (label: string) => {
      const before = new Set(readdirSync(snapDir).filter((f) => f.endsWith('.heapsnapshot')));
      process.kill(cpu.proc.child.pid!, 'SIGUSR2');
      for (let i = 0; i < 120; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        const now = readdirSync(snapDir).filter((f) => f.endsWith('.heapsnapshot') && !before.has(f));
        if (now.length && statSync(path.join(snapDir, now[0]!)).size > 0) {
          await new Promise((r) => setTimeout(r, 3000));
          const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${cpu.proc.child.pid}/status`, 'utf8'))?.[1] ?? 0);
          console.log(JSON.stringify({ bench: 'heap.cpu-worker', after: label, retainedHeapMiB: +(statSync(path.join(snapDir, now[0]!)).size / 2 ** 20).toFixed(1), rssMiB: Math.round(rssKiB / 1024), measure: 'heap snapshot file size (after a full GC)' }));
          return;
        }
      }
    };
    let k = 0;
    let total = 0;
    for (const n of [2000, 20000, 80000]) {
      const id = `h${k++}`;
      await upsertProject(pool, validateProjectDefinition({ id, jsonSchema: { type: 'object' }, regexRules: [], ontology: { classes: ['a', 'b'] }, qcPolicy: { auditShare: 0 } }), 'x');
      const file = path.join(snapDir, `${id}.jsonl`);
      writeFileSync(file, Array.from({ length: n }, (_, i) => JSON.stringify({ externalId: `${id}-${i}`, payload: { text: `t ${i}` }, annotations: [1, 2].map((a) => ({ annotator: `a${a}`, labels: { classes: ['a'] } })) })).join('\n') + '\n');
      const r = await ingestFile(stack.cfg, client, store, { project: id, file, batchSize: 1000, wait: true });
      total += r.counts.accepted;
      await snap(`${total} samples`);
    }
  } finally {
    await connection.close(); await pool.end();
    for (const m of members) await m.proc.stop();
    await stack.stop();
    rmSync(snapDir, { recursive: true, force: true });
    delete process.env.NODE_OPTIONS;
  }
}
