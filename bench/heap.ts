/**
 * `npm run bench -- heap`: does the qc-cpu worker keep memory per sample? The worker runs as its own process
 * on an ephemeral stack; after 2k, then 20k, then 80k more samples it writes a heap snapshot (which a full
 * GC precedes, so the snapshot holds what is retained, not garbage not yet collected), and the snapshot sizes
 * are printed with the process's RSS at that moment. Flat sizes: nothing accumulates in the main isolate.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../src/clients/config';
import { ingestFile } from '../src/cli/ingest';
import { startQcflowProcesses, type ClusterMember } from '../src/infra/cluster';
import { startStack } from '../src/infra/stack';
import { validateProjectDefinition } from '../src/projects/definition';
import { upsertProject } from '../src/store/projects';
import { connect, rssMiB } from './e2e';

const log = pino({ level: 'silent' });

/** Signals the worker to write a snapshot and returns its size in MiB once written. */
async function snapshotMiB(pid: number, dir: string): Promise<number> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 120; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (file && statSync(path.join(dir, file)).size > 0) {
      // The file appears as the write starts; at ~60 MiB it is done well within 3 s.
      await new Promise((r) => setTimeout(r, 3000));
      return statSync(path.join(dir, file)).size / 2 ** 20;
    }
  }
  throw new Error(`the worker wrote no heap snapshot into ${dir} within 120 s`);
}

export async function heapBench(): Promise<void> {
  const snapDir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-heap-'));
  // Inherited by the worker process started below: SIGUSR2 writes a snapshot into snapDir.
  process.env.NODE_OPTIONS = `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapDir}`;
  const stack = await startStack(loadConfig(), log, { ephemeral: true });
  const members: ClusterMember[] = [];
  const { pool, store, client, close } = await connect(stack.cfg, stack.databaseUrl);
  try {
    await startQcflowProcesses(stack.cfg, stack.databaseUrl, [{ name: 'qc-cpu', role: 'cpu' }], log, (x) => members.push(x));
    const pid = members[0]!.proc.child.pid!;
    let total = 0;
    for (const [k, n] of [2000, 20000, 80000].entries()) {
      const id = `h${k}`;
      await upsertProject(pool, validateProjectDefinition({ id, jsonSchema: { type: 'object' }, regexRules: [], ontology: { classes: ['a', 'b'] }, qcPolicy: { auditShare: 0 } }), 'bench');
      const file = path.join(snapDir, `${id}.jsonl`);
      writeFileSync(file, Array.from({ length: n }, (_, i) => JSON.stringify({ externalId: `${id}-${i}`, payload: { text: `t ${i}` }, annotations: [1, 2].map((a) => ({ annotator: `a${a}`, labels: { classes: ['a'] } })) })).join('\n') + '\n');
      total += (await ingestFile(stack.cfg, client, store, { project: id, file, batchSize: 1000, wait: true })).counts.accepted;
      const retained = await snapshotMiB(pid, snapDir);
      console.log(JSON.stringify({ bench: 'heap.cpu-worker', after: `${total} samples`, retainedHeapMiB: +retained.toFixed(1), rssMiB: Math.round(rssMiB(pid)), measure: 'heap snapshot file size (after a full GC)' }));
    }
  } finally {
    await close();
    for (const m of members) await m.proc.stop();
    await stack.stop();
    rmSync(snapDir, { recursive: true, force: true });
    delete process.env.NODE_OPTIONS;
  }
}
