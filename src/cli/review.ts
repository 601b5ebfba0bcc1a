import type { Config } from '../clients/config';
import type { ReviewTask } from '../review/decisions';
import type { TaskDetail, DecisionResult } from '../review/service';
import type { PrecisionReport } from '../review/precision';
import { age, dueIn } from '../http/html';
import { CliError } from './input';

/**
 * `qcflow review …` talks to the review server's JSON API, so the CLI is refused exactly what the web
 * page is refused; it never touches Postgres or Temporal itself.
 */
export class ReviewApiClient {
  constructor(private readonly baseUrl: string, private readonly token: string) {}

  static fromConfig(cfg: Config): ReviewApiClient {
    if (!cfg.http.token) throw new CliError('QCFLOW_TOKEN is not set: export QCFLOW_TOKEN=$(qcflow token issue --user <you> --role reviewer)');
    return new ReviewApiClient(cfg.http.serverUrl, cfg.http.token);
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new CliError(`cannot reach the review server at ${this.baseUrl} (${(err as Error).message}); start it with \`qcflow dev\` or \`qcflow serve\`, or set QCFLOW_SERVER_URL`);
    }
    const text = await res.text();
    const json = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) {
      const e = (json as { error?: { message?: string } } | undefined)?.error;
      throw new CliError(`${res.status}: ${e?.message ?? text}`);
    }
    return json as T;
  }

  list(o: { project?: string; limit?: number }): Promise<{ tasks: ReviewTask[] }> {
    const q = new URLSearchParams();
    if (o.project) q.set('project', o.project);
    if (o.limit) q.set('limit', String(o.limit));
    return this.call('GET', `/api/tasks${q.size ? `?${q}` : ''}`);
  }

  show(id: string): Promise<TaskDetail> {
    return this.call('GET', `/api/tasks/${encodeURIComponent(id)}`);
  }

  claim(id: string): Promise<{ task: ReviewTask }> {
    return this.call('POST', `/api/tasks/${encodeURIComponent(id)}/claim`);
  }

  next(project?: string): Promise<{ task: ReviewTask | null }> {
    return this.call('POST', '/api/tasks/next', project ? { project } : {});
  }

  decide(id: string, body: { decision: string; labels?: unknown; comment?: string }): Promise<DecisionResult> {
    return this.call('POST', `/api/tasks/${encodeURIComponent(id)}/decision`, body);
  }

  members(project: string): Promise<{ members: Array<{ user: string; role: string }> }> {
    return this.call('GET', `/api/projects/${encodeURIComponent(project)}/members`);
  }

  setMember(project: string, user: string, role: string): Promise<{ ok: true }> {
    return this.call('PUT', `/api/projects/${encodeURIComponent(project)}/members/${encodeURIComponent(user)}`, { role });
  }

  removeMember(project: string, user: string): Promise<{ removed: boolean }> {
    return this.call('DELETE', `/api/projects/${encodeURIComponent(project)}/members/${encodeURIComponent(user)}`);
  }

  precision(project: string): Promise<PrecisionReport> {
    return this.call('GET', `/api/projects/${encodeURIComponent(project)}/qc-precision`);
  }
}

export function formatTasks(tasks: ReviewTask[]): string {
  if (tasks.length === 0) return 'no review tasks for you right now';
  const rows = tasks.map((t) => [t.id, t.project, t.reason + (t.round ? ` (round ${t.round})` : ''), age(t.createdAt), dueIn(t.dueAt), t.assignee ?? '(unclaimed)', t.status]);
  const head = ['TASK', 'PROJECT', 'REASON', 'AGE', 'DUE', 'HELD BY', 'STATUS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function formatTask(d: TaskDetail): string {
  const out = [
    `task ${d.task.id}  project ${d.task.project}  sample ${d.sample.externalId} (${d.sample.id})`,
    `reason: ${d.task.reason}${d.task.round ? ` (round ${d.task.round})` : ''}  status: ${d.task.status}  held by: ${d.task.assignee ?? '(unclaimed)'}  due ${dueIn(d.task.dueAt)}`,
    `payload: ${JSON.stringify(d.sample.payload)}`,
    ...d.sample.media.map((m) => `media: ${m.key}  ${m.url}`),
    'annotations:',
    ...d.annotations.map((a) => `  ${a.annotator}: ${JSON.stringify(a.labels)}`),
    `consensus: ${JSON.stringify(d.consensus)}`,
    'layers:',
    ...d.layers.flatMap((l) => [
      `  L${l.layer} ${l.passed ? 'passed' : 'flagged'}${l.score === null ? '' : ` score ${l.score.toFixed(3)}`}${l.modelVersion ? ` (${l.modelVersion})` : ''}`,
      ...l.findings.map((f) => `     ${f.rule}${f.pointer ? ` ${f.pointer}` : ''}: ${f.message}`),
    ]),
    d.can.decide ? 'you can decide it: qcflow review approve|reject|resample ID, or correct ID --labels file.json' : d.can.claim ? `claim it first: qcflow review claim ${d.task.id}` : '',
  ];
  return out.filter(Boolean).join('\n');
}

export function formatPrecision(project: string, r: PrecisionReport): string {
  const line = (label: string, g: PrecisionReport['overall']): string =>
    `${label.padEnd(28)} reviewed ${String(g.reviewed).padStart(5)}  upheld ${String(g.upheld).padStart(5)}  precision ${g.precision === null ? '   —' : g.precision.toFixed(3)}${g.interval ? ` [${g.interval[0].toFixed(3)}, ${g.interval[1].toFixed(3)}]` : ''}  overturned: reject ${g.overturned.reject}, correct ${g.overturned.correct}, resample ${g.overturned.resample}`;
  return [
    `QC precision of ${project} (reviews of samples the machine would have accepted; 95% Wilson interval)`,
    line('overall', r.overall),
    ...r.byModelVersion.map((g) => line(`model ${g.modelVersion ?? '(none)'}`, g)),
    ...Object.entries(r.byReason).map(([reason, g]) => line(`reason ${reason}`, g)),
    '',
    r.calibration.reviewed === 0
      ? 'calibration: no decided review of a sample with a risk estimate yet'
      : `calibration of layer 5's probability that the labels are wrong, against ${r.calibration.reviewed} decided reviews (corrected or rejected = wrong): ECE ${r.calibration.ece!.toFixed(3)} (the annotator models before recalibration: ${r.calibration.rawEce!.toFixed(3)})`,
    ...r.calibration.table.map((b) => `  p ${b.from.toFixed(1)}–${b.to.toFixed(1)}  n ${String(b.n).padStart(5)}  predicted ${b.predicted.toFixed(3)}  observed ${b.observed.toFixed(3)}  ${'█'.repeat(Math.round(b.observed * 20)).padEnd(20, '·')}`),
  ].join('\n');
}
