import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..');
const ROOTS = ['src', 'activities', 'workflows', 'workers', 'bench'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports and re-exports of a module (type-only ones too: a cycle of types is still a knot for a reader). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^'";]*?from\s+'(\.[^']+)'/gms)) {
    const base = path.resolve(path.dirname(file), m[1]!);
    const hit = [`${base}.ts`, path.join(base, 'index.ts')].find((p) => existsSync(p));
    if (hit) out.push(hit);
  }
  return out;
}

/** Every import cycle reachable from the modules, each as the path that closes it. */
function importCycles(modules: string[]): string[][] {
  const graph = new Map<string, string[]>();
  const edges = (f: string): string[] => graph.get(f) ?? graph.set(f, importsOf(f)).get(f)!;
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[][] = [];
  const visit = (f: string, trail: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') { cycles.push([...trail.slice(trail.indexOf(f)), f]); return; }
    state.set(f, 'open');
    for (const g of edges(f)) visit(g, [...trail, f]);
    state.set(f, 'done');
  };
  for (const f of modules) visit(f, []);
  return cycles;
}

test('no import cycles among src, activities, workflows, workers and bench', () => {
  const modules = ROOTS.flatMap((r) => files(path.join(REPO, r)));
  assert.ok(modules.length > 100);
  const rel = (c: string[]) => c.map((f) => path.relative(REPO, f)).join(' → ');
  assert.deepEqual(importCycles(modules).map(rel), []);
});

test('the cycle check sees a cycle (control)', () => {
  const knot = importCycles([path.join(REPO, 'test', 'fixtures', 'import-cycle', 'a.ts')]);
  assert.equal(knot.length, 1);
  assert.deepEqual(knot[0]!.map((f) => path.basename(f)), ['a.ts', 'b.ts', 'a.ts']);
});
