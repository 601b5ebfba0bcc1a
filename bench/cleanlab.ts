/** cleanlab's CROWDLAB on a crowd the benches built, for figures printed beside qcflow's (bench/cleanlab_crowd.py). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../src/clients/config';
import { venvPython } from './python';

/** What cleanlab_crowd.py reads: votes as class indices (null: that annotator did not label the sample), the truth, and optionally each sample's features for a classifier. */
export interface CrowdlabInput {
  classes: string[];
  annotators: string[];
  labels: Array<Array<number | null>>;
  truth: number[];
  signal?: number[][];
  qcflowClassErrorRate?: number;
}

/** CROWDLAB's figures on `input` (consensus accuracy, AUROC, coverage at error rates), or why it did not run. */
export function crowdlab(input: CrowdlabInput, cacheDir = loadConfig().binCacheDir): unknown {
  const py = venvPython(cacheDir, 'venv-cleanlab', ['cleanlab', 'sklearn'], ['cleanlab', 'scikit-learn', 'pandas']);
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
