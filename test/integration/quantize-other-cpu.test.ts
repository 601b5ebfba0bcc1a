import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './helpers';

/**
 * A quantized model must give the same answer on every x86 CPU. This machine may have VNNI; the CPUs
 * where onnxruntime's u8·s8 kernels saturate (AVX2 without VNNI, e.g. AMD EPYC Rome) are reached by running
 * the real CLI and onnxruntime-node under QEMU's user-mode emulator with `-cpu EPYC-Rome` (Debian's
 * qemu-user; `npm test` installs it). The full-range control shows that the emulated CPU really takes the
 * saturating path, so the floors below would catch a regression.
 */
const QEMU = process.env.QCFLOW_QEMU ?? '/usr/bin/qemu-x86_64';
const AVX2_ONLY_CPU = 'EPYC-Rome';

interface Metrics { top1Agreement: number; cosine: { mean: number } }

async function cli(args: string[], emulated: boolean): Promise<string> {
  const [cmd, argv] = emulated ? [QEMU, ['-cpu', AVX2_ONLY_CPU, process.execPath]] : [process.execPath, []];
  const r = await promisify(execFile)(cmd, [...argv, '--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO, env: { ...process.env, QCFLOW_LOG_LEVEL: 'silent' }, maxBuffer: 64 << 20 });
  return r.stdout;
}

test('int8 models quantized here keep their fidelity floors on an AVX2-only CPU (emulated), and agree with this CPU', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-cpu-'));
  const cases: Array<{ fixture: string; method: 'int8-dynamic' | 'int8-static'; extra: string[] }> = [
    { fixture: 'cnn', method: 'int8-dynamic', extra: [] },
    { fixture: 'cnn', method: 'int8-static', extra: [] },
    { fixture: 'transformer', method: 'int8-dynamic', extra: [] },
    { fixture: 'mlp', method: 'int8-static', extra: [] },
    { fixture: 'cnn', method: 'int8-static', extra: ['--full-range'] },
  ];
  for (const fixture of new Set(cases.map((c) => c.fixture))) {
    await cli(['model', 'fixture', '--name', fixture, '--dir', path.join(dir, fixture), '--samples', '50'], false);
  }
  const results = [];
  // Two emulated runs at a time: each is one single-threaded QEMU process.
  for (let i = 0; i < cases.length; i += 2) {
    results.push(...await Promise.all(cases.slice(i, i + 2).map(async (c) => {
      const d = path.join(dir, c.fixture);
      const out = path.join(d, `${c.method}${c.extra.join('')}.onnx`);
      const calibration = c.method === 'int8-static' ? ['--calibration', path.join(d, 'golden.jsonl')] : [];
      await cli(['model', 'quantize', '--input', path.join(d, 'model.onnx'), '--method', c.method, ...calibration, ...c.extra, '--output', out], false);
      // In process: qemu-user emulates the process it starts, not the children that one forks.
      const evaluate = ['model', 'evaluate', '--reference', path.join(d, 'model.onnx'), '--candidate', out, '--inputs', path.join(d, 'golden.jsonl'), '--runs', '1', '--in-process'];
      const [here, avx2] = await Promise.all([cli(evaluate, false), cli(evaluate, true)]);
      return { ...c, here: JSON.parse(here) as Metrics, avx2: JSON.parse(avx2) as Metrics };
    })));
  }
  for (const r of results) {
    const name = `${r.fixture} ${r.method}${r.extra.length ? ` ${r.extra.join(' ')}` : ''}`;
    t.diagnostic(`${name}: this CPU top-1 ${r.here.top1Agreement} cosine ${r.here.cosine.mean.toFixed(4)}; ${AVX2_ONLY_CPU} top-1 ${r.avx2.top1Agreement} cosine ${r.avx2.cosine.mean.toFixed(4)}`);
    if (r.extra.includes('--full-range')) {
      assert.ok(r.avx2.cosine.mean < 0.95, `${name}: 8-bit weights saturate on ${AVX2_ONLY_CPU} (cosine ${r.avx2.cosine.mean}); if not, the emulation no longer exercises that kernel`);
      continue;
    }
    for (const [cpu, m] of [['this CPU', r.here], [AVX2_ONLY_CPU, r.avx2]] as const) {
      assert.ok(m.top1Agreement >= 0.99 && m.cosine.mean >= 0.99, `${name} on ${cpu}: top-1 ${m.top1Agreement}, cosine ${m.cosine.mean}`);
    }
    assert.ok(Math.abs(r.here.cosine.mean - r.avx2.cosine.mean) < 2e-3, `${name}: the output depends on the CPU (cosine ${r.here.cosine.mean} vs ${r.avx2.cosine.mean})`);
  }
});
