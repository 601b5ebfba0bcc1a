import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keepSensitiveFloat, SENSITIVITY_BATCH } from '../../src/quantize/sensitivity';

// A model whose agreement is 0.90 plus what each node kept float restores; b's error is the same as a's
// (keeping either one float recovers it, both add nothing more): the search must not keep b after a.
const gain: Record<string, number> = { a: 0.04, b: 0.035, c: 0.02, d: 0.01, e: -0.005, f: 0 };
function agreement(kept: string[]): number {
  const s = new Set(kept);
  let x = 0.9;
  for (const k of s) if (!(k === 'b' && s.has('a'))) x += gain[k]!;
  if (s.has('a') && s.has('b')) x -= 0.001;
  return x;
}

function scorer(): { score: (sets: string[][]) => Promise<number[]>; calls: string[][][] } {
  const calls: string[][][] = [];
  return { calls, score: async (sets) => { calls.push(sets); return sets.map(agreement); } };
}

test('keepSensitiveFloat: keeps the most sensitive nodes float until the target, skipping one whose error another already took', async () => {
  const s = scorer();
  const seen: [number, number][] = [];
  const r = await keepSensitiveFloat(Object.keys(gain), s.score, { target: 0.965, maxKept: 3, progress: (e, m) => seen.push([e, m]) });
  assert.deepEqual(r.kept.map((k) => k.node), ['a', 'c', 'd']);
  assert.ok(Math.abs(r.reached - 0.97) < 1e-12 && r.met);
  assert.equal(r.start, 0.9);
  assert.deepEqual(r.gains.map((g) => g.node), ['a', 'b', 'c', 'd', 'f', 'e']);
  // start, six alone, then a, a+b (refused), a+c, a+c+d.
  assert.equal(r.evaluations, 1 + 6 + 4);
  assert.ok(s.calls.every((c) => c.length <= SENSITIVITY_BATCH));
  assert.deepEqual(seen.at(-1), [11, 1 + 6 + 6]);
  assert.ok(seen.every(([e, m], i) => e <= m && (i === 0 || e > seen[i - 1]![0])));
});

test('keepSensitiveFloat: no search when the model already meets the target; maxKept bounds the nodes kept, and says when unmet', async () => {
  const met = scorer();
  const r = await keepSensitiveFloat(Object.keys(gain), met.score, { target: 0.85, maxKept: 3 });
  assert.deepEqual([r.kept, r.evaluations, r.met, met.calls.length], [[], 1, true, 1]);
  const capped = await keepSensitiveFloat(Object.keys(gain), scorer().score, { target: 0.99, maxKept: 1 });
  assert.deepEqual(capped.kept.map((k) => k.node), ['a']);
  assert.equal(capped.met, false);
  assert.ok(Math.abs(capped.reached - 0.94) < 1e-12);
  // Nodes whose keeping float does not help are never kept, even with room left.
  const none = await keepSensitiveFloat(['e', 'f'], scorer().score, { target: 0.99, maxKept: 5 });
  assert.deepEqual([none.kept, none.reached], [[], 0.9]);
});

test('keepSensitiveFloat: with a cost, nodes are taken by gain per cost (a cheap node of less gain first)', async () => {
  const cost: Record<string, number> = { a: 100, b: 100, c: 1, d: 1, e: 1, f: 1 };
  const r = await keepSensitiveFloat(Object.keys(gain), scorer().score, { target: 0.925, maxKept: 3, cost: (n) => cost[n]! });
  assert.deepEqual(r.kept.map((k) => k.node), ['c', 'd']);
  assert.ok(r.met && Math.abs(r.reached - 0.93) < 1e-12);
});
