/**
 * Label Studio (PyPI `label-studio`, the Community edition) as the peer of qcflow's review page: started in
 * a throwaway data folder with a user and a legacy API token, given the same photo and the same people's
 * boxes as annotations through its REST API, for bench/review-real.ts to open in the same Chromium.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../src/clients/config';
import { venvPython } from './python';
import type { LabelBox } from './real-boxes';

export interface LabelStudio {
  url: string;
  email: string;
  password: string;
  stop(): Promise<void>;
  api<T>(method: string, route: string, body?: unknown): Promise<T>;
}

/** Label Studio on a free port, or why it cannot run here (its install is about 1 GB the first time). */
export async function startLabelStudio(port = 18089): Promise<LabelStudio | { skipped: string }> {
  const py = venvPython(loadConfig().binCacheDir, 'venv-labelstudio', ['label_studio'], ['label-studio']);
  if (typeof py !== 'string') return py;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-labelstudio-'));
  const email = 'bench@qcflow.local';
  const password = randomBytes(12).toString('hex');
  const token = randomBytes(20).toString('hex');
  const child: ChildProcess = spawn(path.join(path.dirname(py), 'label-studio'), [
    'start', '--no-browser', '--port', String(port), '--data-dir', dir, '--username', email, '--password', password,
    '--user-token', token, '--enable-legacy-api-token', '--log-level', 'WARNING',
  ], { env: { ...process.env, LABEL_STUDIO_BASE_DATA_DIR: dir }, stdio: 'ignore', detached: true });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* already gone */ }
    await new Promise((r) => setTimeout(r, 1000));
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 240_000;
  for (;;) {
    if (child.exitCode !== null) { await stop(); return { skipped: `label-studio exited with ${child.exitCode} while starting` }; }
    const up = await fetch(`${url}/health`).then((r) => r.ok, () => false);
    if (up) break;
    if (Date.now() > deadline) { await stop(); return { skipped: 'label-studio did not answer /health within 4 minutes' }; }
    await new Promise((r) => setTimeout(r, 1000));
  }
  const api = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const isForm = body instanceof FormData;
    const res = await fetch(`${url}${route}`, {
      method, headers: { Authorization: `Token ${token}`, ...(body !== undefined && !isForm ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : isForm ? body : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`Label Studio ${method} ${route}: ${res.status} ${(await res.text()).slice(0, 300)}`);
    return (await res.json()) as T;
  };
  return { url, email, password, stop, api };
}

/**
 * One image-labelling project with the image uploaded as its task and each person's boxes as one
 * annotation (Label Studio keeps boxes in percent of the image). Resolves to the task's page.
 */
export async function labelStudioTask(ls: LabelStudio, o: { image: Buffer; fileName: string; width: number; height: number; classes: string[]; annotations: Array<{ annotator: string; boxes: LabelBox[] }> }): Promise<{ project: number; task: number; page: string }> {
  const config = `<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">${o.classes.map((c) => `<Label value="${c}"/>`).join('')}</RectangleLabels></View>`;
  const project = await ls.api<{ id: number }>('POST', '/api/projects', { title: 'qcflow review-real', label_config: config });
  const form = new FormData();
  form.append('file', new Blob([o.image], { type: 'image/jpeg' }), o.fileName);
  await ls.api('POST', `/api/projects/${project.id}/import`, form);
  const listed = await ls.api<{ tasks?: Array<{ id: number }> } | Array<{ id: number }>>('GET', `/api/tasks?project=${project.id}`);
  const task = (Array.isArray(listed) ? listed : listed.tasks ?? [])[0];
  if (!task) throw new Error('Label Studio created no task from the uploaded image');
  for (const a of o.annotations) {
    await ls.api('POST', `/api/tasks/${task.id}/annotations`, {
      result: a.boxes.map((b, i) => ({
        id: `${a.annotator}-${i}`, from_name: 'label', to_name: 'image', type: 'rectanglelabels', original_width: o.width, original_height: o.height, image_rotation: 0,
        value: { x: (100 * b.x) / o.width, y: (100 * b.y) / o.height, width: (100 * b.w) / o.width, height: (100 * b.h) / o.height, rotation: 0, rectanglelabels: [b.class] },
      })),
    });
  }
  return { project: project.id, task: task.id, page: `${ls.url}/projects/${project.id}/data?task=${task.id}` };
}
