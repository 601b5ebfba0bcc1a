import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackgroundWriter } from '../../src/util/background-writer';

test('background writer: what is pushed while a write runs goes into the next, larger write; flush waits for all; a failed write is thrown by the next push and by flush', async () => {
  const writes: number[][] = [];
  let release: (() => void) | undefined;
  const w = new BackgroundWriter<number>(async (items) => {
    writes.push(items);
    if (writes.length === 1) await new Promise<void>((r) => { release = r; });
  });
  w.push([1]);
  w.push([2, 3]);
  w.push([4]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(writes, [[1]], 'the first write is still running');
  release!();
  await w.flush();
  assert.deepEqual(writes, [[1], [2, 3, 4]]);

  const failing = new BackgroundWriter<number>(async () => { throw new Error('database gone'); });
  failing.push([1]);
  await assert.rejects(failing.flush(), /database gone/);
  assert.throws(() => failing.push([2]), /database gone/);
});
