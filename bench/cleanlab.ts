/** cleanlab's CROWDLAB on a crowd the benches built, for figures printed beside qcflow's (bench/cleanlab_crowd.py). */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';

/** What cleanlab_crowd.py reads: votes as class indices (null: that annotator did not label the sample), the truth, and optionally each sample's features for a classifier. */
export interface CrowdlabInput {
  classes: string[];
  annotators: string[];
  labels: Array<Array<number | null>>;
  truth: number[];
  signal?: number[][];
  qcflowClassErrorRate?: number;
}

/** cleanlab in a venv of its own beside the binary cache (installed from PyPI once), or why not. */
function cleanlabPython(cacheDir: string): string | { skipped: string } {
  const venv = path.join(path.dirname(cacheDir), 'venv-cleanlab');
  const py = path.join(venv, 'bin', 'python');
  if (existsSync(py) && spawnSync(py, ['-c', 'import cleanlab, sklearn'], { stdio: 'ignore' }).status === 0) return py;
  if (spawnSync('python3', ['-m', 'venv', venv], { stdio: 'ignore' }).status !== 0) return { skipped: 'python3 -m venv failed (apt-get install python3-venv)' };
  getLogger(loadConfig(), 'bench.cleanlab').info({ venv }, 'installing cleanlab and scikit-learn from PyPI for the side-by-side comparison (first time only)');
  const pip = spawnSync(py, ['-m', 'pip', 'install', '-q', 'cleanlab', 'scikit-learn', 'pandas'], { encoding: 'utf8' });
  return pip.status === 0 ? py : { skipped: `pip install cleanlab failed: ${pip.stderr.trim().split('\n').pop()}` };
}

/** CROWDLAB's figures on `input` (consensus accuracy, AUROC, coverage at error rates), or why it did not run. */
export function crowdlab(input: CrowdlabInput, cacheDir = loadConfig().binCacheDir): unknown {
  const py = cleanlabPython(cacheDir);
  if (typeof py !== 'string') return py;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-crowdlab-'));
  try {
    const file = path.join(dir, 'crowd.json');
    writeFileSync(file, JSON.stringify(input));
    return JSON.parse(execFileSync(py, [path.join(__dirname, 'cleanlab_crowd.py'), file], { encoding: 'utf8', maxBuffer: 64 << 20 })) as unknown;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
