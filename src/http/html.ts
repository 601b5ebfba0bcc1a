import type { Finding } from '../qc/findings';
import type { ReviewTask } from '../review/decisions';
import type { TaskDetail } from '../review/service';

/** Escapes text for HTML element content and quoted attribute values. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Markup known to be safe: what html`…` builds. Anything else put into a template is text, escaped. */
export class Html {
  constructor(readonly value: string) {}
}

const EMPTY = new Html('');

/**
 * Pages are written with this tag so escaping is the default, not something to remember: every
 * interpolated value is escaped unless it is Html (markup built the same way) or an array of it;
 * undefined, null and false render as nothing.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  const part = (v: unknown): string => (v instanceof Html ? v.value : Array.isArray(v) ? v.map(part).join('') : v === undefined || v === null || v === false ? '' : esc(v));
  return new Html(strings.reduce((out, s, i) => out + part(values[i - 1]) + s));
}

/** Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000'];

const CSS = `
*{box-sizing:border-box}body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#f6f6f4}
header{display:flex;gap:1rem;align-items:center;padding:.5rem 1rem;background:#1d2b36;color:#fff}header a{color:#fff}
header form{margin-left:auto}main{max-width:1280px;margin:0 auto;padding:1rem}
table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:.35rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.grid{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:1rem}@media (max-width:900px){.grid{grid-template-columns:1fr}}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.75rem 1rem;margin-bottom:1rem}
h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:.2rem 0 .5rem}
.text{font-size:1.15rem;white-space:pre-wrap;background:#fbfbf8;padding:.6rem;border-left:4px solid #0072B2}
figure{position:relative;display:inline-block;margin:0;max-width:100%}figure img{display:block;max-width:100%;height:auto}
figure svg{position:absolute;inset:0;width:100%;height:100%}.legend span{display:inline-block;margin-right:1rem}
.sw{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin-right:.3em;border:2px solid}
.pass{color:#00734d}.fail{color:#b3261e}code,pre{font-family:ui-monospace,monospace;font-size:.9em}pre{white-space:pre-wrap;margin:.2rem 0}
.decide{position:sticky;top:0}.decide button{font-size:1rem;padding:.45rem .8rem;margin:.2rem .3rem .2rem 0;cursor:pointer}
button:focus-visible,a:focus-visible,textarea:focus-visible{outline:3px solid #E69F00;outline-offset:2px}
kbd{border:1px solid #999;border-bottom-width:2px;border-radius:3px;padding:0 .3em;font-size:.85em;background:#fff}
.error{background:#fde7e5;border:1px solid #b3261e;padding:.6rem;border-radius:6px;margin-bottom:1rem}
.note{background:#e8f1fb;border:1px solid #0072B2;padding:.6rem;border-radius:6px;margin-bottom:1rem}
textarea{width:100%;min-height:8rem;font-family:ui-monospace,monospace}.muted{color:#666}
`;

/** `script`: the path of a same-origin script (the pages' CSP allows no inline script). */
export function layout(o: { title: string; user?: string; csrf?: string; body: Html; script?: string }): string {
  const nav = o.user
    ? html`<a href="/queue">Queue</a><span class="muted">${o.user}</span><form method="post" action="/logout"><input type="hidden" name="_csrf" value="${o.csrf}"><button>Sign out</button></form>`
    : EMPTY;
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${o.title} · qcflow review</title><style>${new Html(CSS)}</style></head>
<body><header><strong>qcflow review</strong>${nav}</header><main>${o.body}</main>${o.script && html`<script src="${o.script}" defer></script>`}</body></html>`.value;
}

export function loginPage(o: { csrf: string; error?: string; next?: string }): string {
  return layout({
    title: 'Sign in',
    body: html`<h1>Sign in</h1>${o.error && html`<div class="error" role="alert">${o.error}</div>`}
<section><form method="post" action="/login"><input type="hidden" name="_csrf" value="${o.csrf}"><input type="hidden" name="next" value="${o.next ?? '/queue'}">
<label for="token">Reviewer token (from <code>qcflow token issue --user you --role reviewer</code>)</label>
<textarea id="token" name="token" required autofocus autocomplete="off" spellcheck="false"></textarea>
<button type="submit">Sign in</button></form></section>`,
  });
}

export function age(fromIso: string, now = new Date()): string {
  const s = Math.max(0, Math.round((now.getTime() - new Date(fromIso).getTime()) / 1000));
  if (s < 90) return `${s}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  if (s < 129600) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

export function dueIn(dueIso: string, now = new Date()): string {
  const due = new Date(dueIso);
  return due > now ? `in ${age(now.toISOString(), due)}` : `overdue ${age(dueIso, now)}`;
}

export function queuePage(o: { user: string; csrf: string; tasks: ReviewTask[]; note?: string }): string {
  const rows = o.tasks.map((t) => {
    const mine = t.assignee === o.user;
    const holder = mine ? 'you' : t.assignee ? `${t.assignee} (claim expired)` : 'unclaimed';
    return html`<tr><td><a href="/tasks/${t.id}">#${t.id}</a></td><td>${t.project}</td><td>${t.reason}${t.round > 0 && html` <span class="muted">(round ${t.round})</span>`}</td>
<td>${age(t.createdAt)}</td><td>${dueIn(t.dueAt)}</td><td>${holder}</td><td>${t.status}</td></tr>`;
  });
  return layout({
    title: 'Queue', user: o.user, csrf: o.csrf,
    body: html`<h1>My review queue</h1>${o.note && html`<div class="note" role="status">${o.note}</div>`}
<form method="post" action="/next"><input type="hidden" name="_csrf" value="${o.csrf}"><button id="start" type="submit" autofocus>Start reviewing <kbd>Enter</kbd></button></form>
<section><table><thead><tr><th>Task</th><th>Project</th><th>Reason</th><th>Age</th><th>Due</th><th>Held by</th><th>Status</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="7" class="muted">Nothing to review.</td></tr>`}</tbody></table></section>`,
  });
}

function findingList(findings: Finding[]): Html {
  if (!findings.length) return EMPTY;
  return html`<ul>${findings.map((f) => html`<li><code>${f.rule}</code> ${f.pointer && html`<code>${f.pointer}</code> `}${f.message}</li>`)}</ul>`;
}

function boxesSvg(annotations: TaskDetail['annotations']): Html {
  const shapes = annotations.flatMap((a, i) => (a.labels.boxes ?? []).map((b) => {
    const colour = PALETTE[i % PALETTE.length];
    return html`<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" fill="none" stroke="${colour}" stroke-width="3" vector-effect="non-scaling-stroke"><title>${a.annotator}: ${b.class}</title></rect>`;
  }));
  return shapes.length ? html`<svg class="boxes" preserveAspectRatio="none" aria-hidden="true">${shapes}</svg>` : EMPTY;
}

const LAYER_NAMES: Record<number, string> = { 1: 'Compliance', 2: 'Consistency', 3: 'Plausibility', 4: 'Quality decay', 5: 'Fusion' };

/** The decision page: the sample, every annotation (boxes in distinct colours), each layer's findings, and the decision form. */
export function taskPage(o: { user: string; csrf: string; detail: TaskDetail; error?: { message: string; findings?: Finding[] }; labelsDraft?: string; note?: string }): string {
  const { task, sample, annotations, layers, consensus, can } = o.detail;
  const text = typeof sample.payload.text === 'string' ? html`<div class="text" id="sample-text">${sample.payload.text}</div>` : EMPTY;
  const otherFields = Object.entries(sample.payload).filter(([k]) => k !== 'text' || typeof sample.payload.text !== 'string');
  const media = sample.media.map((m) => html`<figure><img src="${m.url}" alt="${m.key}">${boxesSvg(annotations)}</figure>`);
  const swatch = (i: number): Html => html`<i class="sw" style="border-color:${PALETTE[i % PALETTE.length]}"></i>`;
  const legend = annotations.map((a, i) => html`<span>${swatch(i)}${a.annotator}</span>`);
  const annRows = annotations.map((a, i) => html`<tr><td>${swatch(i)}${a.annotator}</td><td><pre>${JSON.stringify(a.labels)}</pre></td></tr>`);
  const layerRows = layers.map((l) => html`<tr><td>${l.layer} ${LAYER_NAMES[l.layer] ?? ''}</td><td class="${l.passed ? 'pass' : 'fail'}">${l.passed ? 'passed' : 'flagged'}</td>
<td>${l.score === null ? '—' : l.score.toFixed(3)}${l.modelVersion && html`<br><span class="muted">${l.modelVersion}</span>`}</td><td>${l.findings.length ? findingList(l.findings) : html`<span class="muted">no findings</span>`}</td></tr>`);
  const draft = o.labelsDraft ?? JSON.stringify(consensus ?? annotations[0]?.labels ?? {}, null, 2);
  const form = can.decide
    ? html`<form method="post" action="/tasks/${task.id}/decide" id="decide"><input type="hidden" name="_csrf" value="${o.csrf}">
<button name="decision" value="approve" id="approve">Approve <kbd>a</kbd></button><button name="decision" value="reject" id="reject">Reject <kbd>r</kbd></button>
<button name="decision" value="resample" id="resample">Resample <kbd>s</kbd></button>
<details id="correct-box"${o.labelsDraft && new Html(' open')}><summary>Correct the labels <kbd>c</kbd></summary>
<label for="labels">Final labels (JSON); <kbd>Ctrl</kbd>+<kbd>Enter</kbd> submits</label><textarea id="labels" name="labels">${draft}</textarea>
<button name="decision" value="correct" id="correct">Submit correction</button></details>
<label for="comment">Note (optional)</label><input id="comment" name="comment" maxlength="2000" style="width:100%">
</form><p class="muted">Keys: <kbd>a</kbd> approve · <kbd>r</kbd> reject · <kbd>s</kbd> resample · <kbd>c</kbd> correct · <kbd>q</kbd> queue</p>`
    : can.claim
      ? html`<form method="post" action="/tasks/${task.id}/claim"><input type="hidden" name="_csrf" value="${o.csrf}"><button id="claim" autofocus>Claim this task <kbd>Enter</kbd></button></form>`
      : html`<p>${task.status === 'open' ? 'Held by someone else.' : html`Status: ${task.status}${task.decision && html` — ${task.decision} by ${task.decidedBy}`}`}</p>`;
  const error = o.error ? html`<div class="error" role="alert"><strong>${o.error.message}</strong>${findingList(o.error.findings ?? [])}</div>` : EMPTY;
  return layout({
    title: `Task ${task.id}`, user: o.user, csrf: o.csrf,
    body: html`<h1>Task #${task.id} · ${task.project} · <span class="muted">${sample.externalId}</span></h1>${error}${o.note && html`<div class="note" role="status">${o.note}</div>`}
<div class="grid"><div>
<section><h2>Why you see this</h2><p><strong>${task.reason}</strong>${task.round > 0 && ` (round ${task.round}, escalated)`} · waiting ${age(task.createdAt)} · due ${dueIn(task.dueAt)}</p>${findingList(layers.find((l) => l.layer === 5)?.findings ?? [])}</section>
<section><h2>Sample</h2>${text}${media}${media.length > 0 && legend.length > 0 && html`<p class="legend">${legend}</p>`}
${otherFields.length > 0 && html`<table>${otherFields.map(([k, v]) => html`<tr><th>${k}</th><td><pre>${typeof v === 'string' ? v : JSON.stringify(v)}</pre></td></tr>`)}</table>`}</section>
<section><h2>Annotations</h2><table>${annRows}</table>${consensus && html`<p>Consensus: <code>${JSON.stringify(consensus)}</code></p>`}</section>
<section><h2>QC layers</h2><table><thead><tr><th>Layer</th><th>Result</th><th>Score</th><th>Findings</th></tr></thead><tbody>${layerRows}</tbody></table></section>
</div><div><section class="decide"><h2>Decision</h2>${form}</section></div></div>`,
    script: TASK_SCRIPT_PATH,
  });
}

export const TASK_SCRIPT_PATH = '/static/task.js';

/**
 * The task page's script, served from TASK_SCRIPT_PATH: boxes fitted to each image once it loads, and
 * keyboard shortcuts, ignored while typing in a field, so a correction can contain the letters.
 */
export const TASK_SCRIPT = `
function fitBoxes(img){var svg=img.nextElementSibling;if(!svg)return;var r=svg.querySelectorAll('rect'),big=false;
for(var i=0;i<r.length;i++){if(+r[i].getAttribute('x')+ +r[i].getAttribute('width')>1.001)big=true}
svg.setAttribute('viewBox',big?'0 0 '+img.naturalWidth+' '+img.naturalHeight:'0 0 1 1')}
document.querySelectorAll('figure img').forEach(function(img){if(img.complete&&img.naturalWidth)fitBoxes(img);else img.addEventListener('load',function(){fitBoxes(img)})});
document.addEventListener('keydown',function(e){var t=e.target;var typing=t&&(t.tagName==='TEXTAREA'||t.tagName==='INPUT');
if(typing){if(t.id==='labels'&&e.key==='Enter'&&(e.ctrlKey||e.metaKey)){e.preventDefault();document.getElementById('correct').click()}
if(e.key==='Escape')t.blur();return}
if(e.ctrlKey||e.metaKey||e.altKey)return;
var go=function(id){var b=document.getElementById(id);if(b){e.preventDefault();b.click()}};
if(e.key==='a')go('approve');else if(e.key==='r')go('reject');else if(e.key==='s')go('resample');
else if(e.key==='c'){var d=document.getElementById('correct-box');if(d){e.preventDefault();d.open=true;document.getElementById('labels').focus()}}
else if(e.key==='q'){e.preventDefault();location.href='/queue'}});
`;
