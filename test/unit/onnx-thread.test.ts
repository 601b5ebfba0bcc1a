import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import pino from 'pino';
import { OrtThread, OrtThreadExited, type PlainTensor } from '../../src/clients/onnx-thread';
import { SessionCache } from '../../src/clients/onnx-sessions';
import { sha256Hex } from '../../src/util/canonical-json';
import { mlpModel, normal, rng } from '../../src/onnx/fixture-models';
import { bagOfWordsTextModel } from '../../src/onnx/reference-models';

test('sessions run on the onnxruntime thread: this thread keeps going while a model computes, outputs match, feeds move without a copy', async () => {
  // About 2 GFLOP per run: long enough that a run on this thread would block every tick below.
  const f = await mlpModel(1, { input: 1024, hidden1: 4096, hidden2: 1024 });
  const B = 128;
  const x = normal(rng(5), B * 1024, 1);
  const local = await ort.InferenceSession.create(f.onnx, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  const expected = (await local.run({ input: new ort.Tensor('float32', x.slice(), [B, 1024]) })).logits!.data as Float32Array;
  await local.release();

  const thread = new OrtThread();
  try {
    const s = await thread.createSession(f.onnx, 'cpu', 1);
    assert.deepEqual([s.inputNames, s.outputNames], [['input'], ['logits']]);
    const feed: PlainTensor = { type: 'float32', data: x.slice(), dims: [B, 1024] };
    let settled = false;
    const run = s.run({ input: feed }, ['logits']).finally(() => (settled = true));
    assert.equal(feed.data.byteLength, 0, 'the feed buffer moved to the onnxruntime thread');
    let ticks = 0;
    while (!settled) {
      await new Promise((r) => setImmediate(r));
      ticks++;
    }
    // onnxruntime-node's own run() computes inside one setImmediate callback: at most a tick or two.
    assert.ok(ticks > 20, `the event loop turned only ${ticks} times during the run`);
    const { outputs, computeMs } = await run;
    assert.ok(computeMs > 0, `the thread timed its run (${computeMs} ms)`);
    const out = outputs.logits!;
    assert.deepEqual(out.dims, [B, 10]);
    const got = out.data as Float32Array;
    assert.ok(got.every((v, i) => Math.abs(v - expected[i]!) <= 1e-4 * (1 + Math.abs(expected[i]!))), 'same outputs as a session on this thread');
    await s.release();
    assert.equal(s.alive, false);
    await assert.rejects(s.run({ input: { type: 'float32', data: x.slice(), dims: [B, 1024] } }, ['logits']), OrtThreadExited);
    await assert.rejects(thread.createSession(Buffer.from('not onnx'), 'cpu', 1), /protobuf|parse|load/i);
  } finally {
    await thread.close();
  }
});

test('a lost onnxruntime thread fails its pending runs with OrtThreadExited; the session cache loads the model again on a fresh one', async () => {
  const m = bagOfWordsTextModel({ cues: { cat: ['cat', 'meow'], dog: ['dog', 'bark'] } });
  const sha = sha256Hex(m.onnx);
  let loads = 0;
  const load = async (): Promise<Uint8Array> => {
    loads++;
    return m.onnx;
  };
  const feeds = (): Record<string, PlainTensor> => ({
    input_ids: { type: 'int64', data: BigInt64Array.from([2n, 4n, 3n]), dims: [1, 3] },
    attention_mask: { type: 'int64', data: BigInt64Array.from([1n, 1n, 1n]), dims: [1, 3] },
  });
  const thread = new OrtThread();
  const cache = new SessionCache({ providers: ['cpu'], intraOpThreads: 1, maxSessions: 2, maxBytes: 1e9, log: pino({ level: 'silent' }), thread });
  try {
    const first = await cache.with(sha, load, async (s) => s.session);
    const pending = assert.rejects(first.run(feeds(), ['logits']), (err: Error) => err instanceof OrtThreadExited && /reloaded on the next batch/.test(err.message));
    await thread.close(); // what a crash of the thread does to its callers and sessions
    await pending;
    assert.equal(first.alive, false);
    await assert.rejects(first.run(feeds(), ['logits']), OrtThreadExited);

    const logits = await cache.with(sha, load, async (s) => (await s.session.run(feeds(), ['logits'])).outputs.logits!.data);
    assert.deepEqual(Array.from(logits as Float32Array), [3, 0]);
    assert.equal(loads, 2, 'the lost session was loaded again, on a new thread');
    assert.equal(cache.stats().sessions, 1);
  } finally {
    await cache.close();
  }
});
