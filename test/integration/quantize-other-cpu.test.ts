import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './helpers';
import { goldenToJsonl } from '../../src/quantize/evaluate';
import { TORCH_MODELS, TORCH_MODELS_DIR } from '../fixtures/torch-models';

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

interface Case { model: string; method: string; extra: string[] }

/**
 * Quantizes `c.model` (a folder of `dir` with model.onnx and golden.jsonl) here, then evaluates the candidate
 * here and through `elsewhere` (the CLI on an emulated CPU) on the same inputs, two cases at a time: each
 * emulated run is one single-threaded QEMU process.
 */
async function hereAndElsewhere<C extends Case>(dir: string, cases: C[], elsewhere: (c: C, args: string[]) => Promise<string>): Promise<Array<C & { here: Metrics; there: Metrics }>> {
  const results = [];
  for (let i = 0; i < cases.length; i += 2) {
    results.push(...await Promise.all(cases.slice(i, i + 2).map(async (c) => {
      const d = path.join(dir, c.model);
      const out = path.join(d, `${c.method}${c.extra.join('')}.onnx`);
      const calibration = c.method === 'int8-static' ? ['--calibration', path.join(d, 'golden.jsonl')] : [];
      await cli(['model', 'quantize', '--input', path.join(d, 'model.onnx'), '--method', c.method, ...calibration, ...c.extra, '--output', out], false);
      // In process: qemu-user emulates the process it starts, not the children that one forks.
      const evaluate = ['model', 'evaluate', '--reference', path.join(d, 'model.onnx'), '--candidate', out, '--inputs', path.join(d, 'golden.jsonl'), '--runs', '1', '--in-process'];
      const [here, there] = await Promise.all([cli(evaluate, false), elsewhere(c, evaluate)]);
      return { ...c, here: JSON.parse(here) as Metrics, there: JSON.parse(there) as Metrics };
    })));
  }
  return results;
}

test('int8 models quantized here keep their fidelity floors on an AVX2-only CPU (emulated), and agree with this CPU', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-cpu-'));
  const cases: Case[] = [
    { model: 'cnn', method: 'int8-dynamic', extra: [] },
    { model: 'cnn', method: 'int8-static', extra: [] },
    { model: 'transformer', method: 'int8-dynamic', extra: [] },
    { model: 'mlp', method: 'int8-static', extra: [] },
    { model: 'cnn', method: 'int8-static', extra: ['--full-range'] },
  ];
  for (const fixture of new Set(cases.map((c) => c.model))) {
    await cli(['model', 'fixture', '--name', fixture, '--dir', path.join(dir, fixture), '--samples', '50'], false);
  }
  const results = (await hereAndElsewhere(dir, cases, (_, args) => cli(args, true))).map((r) => ({ ...r, avx2: r.there }));
  for (const r of results) {
    const name = `${r.model} ${r.method}${r.extra.length ? ` ${r.extra.join(' ')}` : ''}`;
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

/**
 * ARM: the same CLI on Node's own linux-arm64 build under qemu-aarch64, with onnxruntime-node's arm64
 * binding (scripts/arm64-node.sh fetches Node from npm and three Debian arm64 libraries; `npm test` runs it
 * and passes the folder as QCFLOW_ARM64_DIR). Two CPUs: Neoverse N1 (dot-product instructions, as
 * Graviton 2) and Cortex-A72 (none, as a Raspberry Pi 4). onnxruntime reads the CPU's identity from
 * /proc/cpuinfo, which under qemu-user is this machine's x86 one, and crashes on it; each run therefore
 * sees an ARM cpuinfo bind-mounted in a private mount namespace (unshare, no privileges needed). tsx's
 * esbuild is this machine's binary, which qemu-user lets run natively as a child.
 */
/** Whether this x86 CPU has an integer dot-product (VNNI), with which onnxruntime's u8·s8 kernels do not saturate. */
const HAS_VNNI = /^flags\s*:.*\b(avx512_vnni|avx_vnni)\b/m.test(existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '');
const ARM64_DIR = process.env.QCFLOW_ARM64_DIR ?? path.join(os.homedir(), '.cache/qcflow/arm64');
const ARM_CPUS: Record<string, string> = {
  'neoverse-n1': 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n',
  'cortex-a72': 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n',
};

async function armCli(args: string[], cpu: string, dir: string): Promise<string> {
  const cpuinfo = path.join(dir, `cpuinfo-${cpu}`);
  writeFileSync(cpuinfo, [0, 1].map((i) => `processor\t: ${i}\n${ARM_CPUS[cpu]}`).join('\n'));
  const r = await promisify(execFile)('unshare', [
    '--map-root-user', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /proc/cpuinfo && exec "$@"', cpuinfo,
    '/usr/bin/qemu-aarch64', '-cpu', cpu, path.join(ARM64_DIR, `node-${process.versions.node}`, 'bin', 'node'), '--import', 'tsx', 'src/cli/main.ts', ...args,
  ], {
    cwd: REPO, maxBuffer: 64 << 20,
    env: { ...process.env, QCFLOW_LOG_LEVEL: 'silent', QEMU_LD_PREFIX: path.join(ARM64_DIR, 'sysroot'), ESBUILD_BINARY_PATH: path.join(REPO, 'node_modules/@esbuild/linux-x64/bin/esbuild') },
  });
  return r.stdout;
}

test('quantized models give this CPU\'s answer on ARM (emulated Neoverse N1 and Cortex-A72): int8, int4 MatMul, embeddings and Conv blocks; 8-bit weights do not saturate there', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-arm-'));
  for (const fixture of ['cnn']) await cli(['model', 'fixture', '--name', fixture, '--dir', path.join(dir, fixture), '--samples', '30'], false);
  for (const m of TORCH_MODELS.filter((x) => x.file === 'text-transformer.onnx' || x.file === 'resnet-small.onnx')) {
    const d = path.join(dir, m.file.replace(/\.onnx$/, ''));
    mkdirSync(d);
    copyFileSync(path.join(TORCH_MODELS_DIR, m.file), path.join(d, 'model.onnx'));
    writeFileSync(path.join(d, 'golden.jsonl'), goldenToJsonl(m.golden()));
  }
  // Each emulated run takes 8–15 s, so each case runs on one of the two CPUs. Measured once on both with
  // twelve cases (every method on the fixtures, the torch text transformer and ResNet): all agreed with this
  // CPU to 5 decimals, and full-range weights did not saturate on either.
  const runs: Array<Case & { cpu: string }> = [
    { model: 'cnn', method: 'int8-dynamic', extra: [], cpu: 'cortex-a72' },
    { model: 'cnn', method: 'int8-static', extra: ['--full-range'], cpu: 'neoverse-n1' },
    // GatherBlockQuantized, MatMulNBits and the 8-bit head.
    { model: 'text-transformer', method: 'int4', extra: [], cpu: 'cortex-a72' },
    // Blocked int4 restored by Cast-21 and Mul before each Conv.
    { model: 'resnet-small', method: 'int4', extra: ['--int4-conv'], cpu: 'neoverse-n1' },
  ];
  const results = (await hereAndElsewhere(dir, runs, (c, args) => armCli(args, c.cpu, dir))).map((r) => ({ ...r, arm: r.there }));
  for (const r of results) {
    const name = `${r.model} ${r.method}${r.extra.length ? ` ${r.extra.join(' ')}` : ''} on ${r.cpu}`;
    t.diagnostic(`${name}: cosine ${r.arm.cosine.mean.toFixed(5)}, top-1 ${r.arm.top1Agreement} (this CPU ${r.here.cosine.mean.toFixed(5)}, ${r.here.top1Agreement})`);
    assert.ok(r.arm.top1Agreement >= 0.99 && r.arm.cosine.mean >= 0.99, `${name}: top-1 ${r.arm.top1Agreement}, cosine ${r.arm.cosine.mean}`);
    // This machine saturates 8-bit weights itself where it has no VNNI (as the emulated EPYC-Rome above):
    // ARM is then held to its floor alone. Seen on an AVX2-only CI host: 0.764 here, 0.999 on ARM.
    if (r.extra.includes('--full-range') && !HAS_VNNI) continue;
    assert.ok(Math.abs(r.here.cosine.mean - r.arm.cosine.mean) < 2e-3, `${name}: the output depends on the CPU (cosine ${r.here.cosine.mean} here vs ${r.arm.cosine.mean})`);
  }
});
