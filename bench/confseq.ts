/** confseq's confidence sequences on the rollout bench's own simulated outcomes (bench/confseq_rollout.py). */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getLogger } from '../src/clients/logger';
import { loadConfig } from '../src/clients/config';
import { pipInstall, venvPython } from './python';

/**
 * The venv's python with confseq importable, or why not. confseq 0.0.11 is a source package: its C++ needs
 * Boost's headers (taken from Debian's libboost-dev, unpacked beside the cache, nothing installed system-wide)
 * and a pybind11 newer than the one it pins (2.6 does not build on Python 3.11), hence no build isolation;
 * numpy < 2 because it still uses np.float_.
 */
function confseqPython(cacheDir: string): string | { skipped: string } {
  const py = venvPython(cacheDir, 'venv-confseq', ['skbuild', 'pybind11', 'numpy', 'scipy'], ['pybind11>=2.10', 'setuptools', 'wheel', 'cmake', 'scikit-build', 'numpy<2', 'pandas<3', 'scipy']);
  if (typeof py !== 'string') return py;
  if (spawnSync(py, ['-c', 'import confseq.predmix, confseq.boundaries'], { stdio: 'ignore' }).status === 0) return py;
  const boost = path.join(path.dirname(cacheDir), 'boost-headers');
  if (!existsSync(path.join(boost, 'usr', 'include', 'boost'))) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-boost-'));
    try {
      const got = ['libboost1.81-dev', 'libboost1.74-dev'].some((pkg) => spawnSync('apt-get', ['download', pkg], { cwd: dir, stdio: 'ignore' }).status === 0);
      const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
      if (!got || !deb) return { skipped: 'apt-get download libboost1.81-dev failed: confseq needs Boost headers to build' };
      if (spawnSync('dpkg-deb', ['-x', path.join(dir, deb), boost], { stdio: 'ignore' }).status !== 0) return { skipped: `dpkg-deb -x ${deb} failed` };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  getLogger(loadConfig(), 'bench').info({ boost }, 'building confseq from PyPI for the side-by-side comparison (first time only, about a minute)');
  return pipInstall(py, ['confseq==0.0.11'], { args: ['--no-build-isolation'], env: { SKBUILD_CONFIGURE_OPTIONS: `-DBoost_INCLUDE_DIR=${path.join(boost, 'usr', 'include')}` } }) ?? py;
}

export interface ConfseqFigures {
  differenceRate: number;
  promoted: number;
  rolledBack: number;
  medianSamplesToDecide: number | null;
}

/** confseq's two sequences judged by rolloutVerdict's rule on `stream` (simulateRollouts' record), or why they did not run. */
export function confseqOnStream(
  stream: Uint8Array, o: { runs: number; looks: number; perLook: number; alpha: number; margin: number; minPerArm: number },
  cacheDir = loadConfig().binCacheDir,
): { empiricalBernstein: ConfseqFigures; normalMixture: ConfseqFigures } | { skipped: string } {
  const py = confseqPython(cacheDir);
  if (typeof py !== 'string') return py;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-confseq-'));
  try {
    const file = path.join(dir, 'stream.bin');
    writeFileSync(file, stream);
    const args = [o.runs, o.looks, o.perLook, o.alpha, o.margin, o.minPerArm].map(String);
    return JSON.parse(execFileSync(py, [path.join(__dirname, 'confseq_rollout.py'), file, ...args], { encoding: 'utf8' })) as { empiricalBernstein: ConfseqFigures; normalMixture: ConfseqFigures };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
