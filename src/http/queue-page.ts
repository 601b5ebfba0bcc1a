import { REVIEW_REASONS } from '../review/explain';
import type { QueueQuery } from '../review/service';
import { QUEUE_SORTS, type QueueCounts, type QueueSort, type QueueTask } from '../store/review';
import { age, dueIn, historyList, html, layout, REVIEW_SCRIPT_PATH, undoBar, type Html } from './html';
import type { RecentDecision } from '../store/review';

export const QUEUE_PAGE_SIZE = 50;

/** The queue page's query string as a queue query; anything malformed is dropped rather than refused (it is a link someone typed). */
export function parseQueueQuery(q: Record<string, string | undefined>): QueueQuery & { page: number } {
  const text = (v: string | undefined): string | undefined => (v && v.trim() ? v.trim().slice(0, 200) : undefined);
  const page = Math.max(1, Math.min(10_000, Number.parseInt(q.page ?? '1', 10) || 1));
  const minAge = Number.parseInt(q.age ?? '', 10);
  return {
    project: text(q.project),
    filter: {
      reason: text(q.reason), annotator: text(q.annotator), finding: text(q.finding), externalId: text(q.q),
      minAgeMinutes: minAge > 0 ? minAge : undefined, overdue: q.overdue === '1' || undefined,
    },
    sort: (QUEUE_SORTS as readonly string[]).includes(q.sort ?? '') ? (q.sort as QueueSort) : 'priority',
    limit: QUEUE_PAGE_SIZE, offset: (page - 1) * QUEUE_PAGE_SIZE, page,
  };
}

function holderOf(t: QueueTask, user: string, now: Date): string {
  if (!t.assignee) return 'unclaimed';
  const claimRunsOut = t.claimExpiresAt ? new Date(t.claimExpiresAt) : undefined;
  if (claimRunsOut && claimRunsOut <= now) return `${t.assignee === user ? 'you' : t.assignee} (claim expired)`;
  const who = t.assignee === user ? 'you' : t.assignee;
  return claimRunsOut ? `${who} (claimed, ${dueIn(t.claimExpiresAt!, now).replace(/^in /, '')} left)` : `${who} (assigned)`;
}

function progress(c: QueueCounts): Html {
  const total = c.decidedToday + c.open;
  const share = total ? c.decidedToday / total : 0;
  return html`<section id="counts"><p><strong>${c.mine}</strong> held by you · <strong>${c.open}</strong> open in your projects${c.overdue > 0 && html` · <strong class="fail">${c.overdue} overdue</strong>`} · <strong>${c.decidedToday}</strong> decided by you today</p>
<svg viewBox="0 0 100 4" preserveAspectRatio="none" style="width:100%;height:10px" role="img" aria-label="${c.decidedToday} decided today of ${total}"><rect width="100" height="4" fill="#e3e3e3"/><rect width="${(share * 100).toFixed(2)}" height="4" fill="#009E73"/></svg></section>`;
}

const option = (value: string, label: string, current: string | undefined): Html => html`<option value="${value}"${current === value && html` selected`}>${label}</option>`;

/** The queue: progress counts, filters, sort, search by external id, and pages of tasks. */
export function queuePage(o: { user: string; csrf: string; tasks: QueueTask[]; total: number; counts: QueueCounts; projects: string[]; query: ReturnType<typeof parseQueueQuery>; note?: string; now?: Date;
  undo?: { taskId: string; decision: string; secondsLeft: number }; history?: RecentDecision[] }): string {
  const now = o.now ?? new Date();
  const f = o.query.filter ?? {};
  const rows = o.tasks.map((t) => html`<tr><td><a href="/tasks/${t.id}">#${t.id}</a></td><td>${t.externalId}</td><td>${t.project}</td>
<td>${t.reason}${t.round > 0 && html` <span class="muted">(round ${t.round})</span>`}</td><td>${t.risk === null ? '—' : t.risk.toFixed(3)}</td>
<td>${age(t.createdAt, now)}</td><td class="${new Date(t.dueAt) < now ? 'fail' : ''}">${dueIn(t.dueAt, now)}</td><td>${holderOf(t, o.user, now)}</td><td>${t.status}</td></tr>`);
  const pages = Math.max(1, Math.ceil(o.total / QUEUE_PAGE_SIZE));
  const link = (page: number): string => {
    const q = new URLSearchParams();
    const set = (k: string, v: unknown): void => { if (v !== undefined && v !== '') q.set(k, String(v)); };
    set('project', o.query.project); set('reason', f.reason); set('annotator', f.annotator); set('finding', f.finding); set('q', f.externalId);
    set('age', f.minAgeMinutes); set('overdue', f.overdue ? '1' : undefined); set('sort', o.query.sort === 'priority' ? undefined : o.query.sort); set('page', page > 1 ? page : undefined);
    return `/queue${q.size ? `?${q}` : ''}`;
  };
  const first = o.total ? (o.query.page - 1) * QUEUE_PAGE_SIZE + 1 : 0;
  return layout({
    title: 'Queue', user: o.user, csrf: o.csrf, script: REVIEW_SCRIPT_PATH,
    body: html`<h1>Review queue</h1>${o.note && html`<div class="note" role="status">${o.note}</div>`}${undoBar(o.undo, o.csrf)}
${progress(o.counts)}
${o.projects.length > 0 && html`<p id="dashboards">Quality dashboards: ${o.projects.map((p, i) => html`${i > 0 && ' · '}<a href="/projects/${p}/dashboard">${p}</a>`)}</p>`}
<form method="post" action="/next"><input type="hidden" name="_csrf" value="${o.csrf}"><button id="start" type="submit" autofocus>Start reviewing <kbd>Enter</kbd></button>
<span class="muted">takes what is due within the hour first, then the likeliest wrong</span></form>
<section><form method="get" action="/queue" id="filters" class="filters">
<label>Project <select name="project">${option('', 'all', o.query.project)}${o.projects.map((p) => option(p, p, o.query.project))}</select></label>
<label>Reason <select name="reason">${option('', 'any', f.reason)}${REVIEW_REASONS.map((r) => option(r, r, f.reason))}</select></label>
<label>Annotator <input name="annotator" value="${f.annotator ?? ''}" size="10"></label>
<label>Finding <input name="finding" value="${f.finding ?? ''}" size="14" placeholder="geometry_conflict"></label>
<label>External id <input name="q" type="search" value="${f.externalId ?? ''}" size="12" placeholder="starts with"></label>
<label>Waiting <select name="age">${option('', 'any time', f.minAgeMinutes?.toString())}${[['60', '≥ 1 hour'], ['480', '≥ 8 hours'], ['1440', '≥ 1 day']].map(([v, l]) => option(v!, l!, f.minAgeMinutes?.toString()))}</select></label>
<label><input type="checkbox" name="overdue" value="1"${f.overdue && html` checked`}> overdue only</label>
<label>Sort <select name="sort">${option('priority', 'priority', o.query.sort)}${option('oldest', 'oldest first', o.query.sort)}${option('due', 'due first', o.query.sort)}${option('risk', 'likeliest wrong', o.query.sort)}</select></label>
<button type="submit">Apply</button> <a href="/queue">Clear</a></form></section>
<section><p id="showing">${o.total ? `Showing ${first}–${first + o.tasks.length - 1} of ${o.total}` : 'Nothing matches.'}</p>
<div class="scroll"><table id="tasks"><thead><tr><th>Task</th><th>External id</th><th>Project</th><th>Reason</th><th>P(wrong)</th><th>Age</th><th>Due</th><th>Held by</th><th>Status</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="9" class="muted">Nothing to review.</td></tr>`}</tbody></table></div>
${pages > 1 && html`<nav class="pager" aria-label="pages">${o.query.page > 1 && html`<a href="${link(o.query.page - 1)}" rel="prev">← previous</a> `}page ${o.query.page} of ${pages}${o.query.page < pages && html` <a href="${link(o.query.page + 1)}" rel="next">next →</a>`}</nav>`}</section>${historyList(o.history ?? [], now)}`,
  });
}
