/** Peer tools from PyPI (cleanlab, onnxruntime's quantizer), each in a venv of its own beside the binary cache. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';

/** The venv's python once `imports` import there (installing `packages` from PyPI the first time), or why not. */
export function venvPython(cacheDir: string, name: string, imports: string[], packages: string[]): string | { skipped: string } {
  const venv = path.join(path.dirname(cacheDir), name);
  const py = path.join(venv, 'bin', 'python');
  const probe = (): boolean => spawnSync(py, ['-c', imports.map((m) => `import ${m}`).join('; ')], { stdio: 'ignore' }).status === 0;
  if (existsSync(py) && probe()) return py;
  if (!existsSync(py) && spawnSync('python3', ['-m', 'venv', venv], { stdio: 'ignore' }).status !== 0) return { skipped: 'python3 -m venv failed (apt-get install python3-venv)' };
  getLogger(loadConfig(), 'bench').info({ venv, packages }, 'installing a peer tool from PyPI for the side-by-side comparison (first time only)');
  const failed = pipInstall(py, packages);
  if (failed) return failed;
  return probe() ? py : { skipped: `${imports.join(', ')} still do not import after pip install` };
}

/** `pip install` into the venv of `py` (`args` before the packages, `env` added); undefined when it worked, else why not. */
export function pipInstall(py: string, packages: string[], o: { args?: string[]; env?: Record<string, string> } = {}): { skipped: string } | undefined {
  const pip = spawnSync(py, ['-m', 'pip', 'install', '-q', ...(o.args ?? []), ...packages], { encoding: 'utf8', env: { ...process.env, ...o.env } });
  return pip.status === 0 ? undefined : { skipped: `pip install ${packages.join(' ')} failed: ${pip.stderr.trim().split('\n').pop()}` };
}
