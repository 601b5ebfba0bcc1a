import type { Finding } from '../qc/findings';

/** Escapes text for HTML element content and quoted attribute values. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Markup known to be safe: what html`…` builds. Anything else put into a template is text, escaped. */
export class Html {
  constructor(readonly value: string) {}
}

export const EMPTY = new Html('');

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
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000'];

const CSS = `
*{box-sizing:border-box}body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#f6f6f4}
header{display:flex;gap:1rem;align-items:center;padding:.5rem 1rem;background:#1d2b36;color:#fff}header a{color:#fff}
header form{margin-left:auto}main{max-width:1280px;margin:0 auto;padding:1rem}
table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:.35rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.grid{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:1rem}@media (max-width:900px){.grid{grid-template-columns:minmax(0,1fr)}}
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
h1,pre,code{overflow-wrap:anywhere}td,th{overflow-wrap:break-word}.scroll{overflow-x:auto}
td.differs{background:#fff1d6;font-weight:600}td.differs::before{content:"≠ ";color:#b35c00}ul.span-diffs{margin:.25em 0 0;padding-left:1.1em;font-weight:400}
.buttons{display:flex;flex-wrap:wrap;gap:.3rem}.buttons button{margin:0}
.editor fieldset{border:1px solid #ddd;border-radius:4px;margin:.4rem 0;padding:.3rem .6rem}.editor legend{font-weight:600}
.editor label{display:inline-block;margin:.15rem .6rem .15rem 0}.editor .row{display:flex;flex-wrap:wrap;gap:.3rem;align-items:center;padding:.25rem 0;border-bottom:1px solid #eee}
.editor .row.selected{background:#fff6e0}.editor input[type=number]{width:5.2em}.editor select,.editor input{font-size:1rem;min-height:2rem}
.editor button{min-height:2rem}.start button{margin:.1rem .2rem .1rem 0}
svg.draft{touch-action:none;cursor:crosshair}svg.draft rect.box{fill:rgba(230,159,0,.12);stroke:#E69F00;cursor:move}
svg.draft rect.box.selected{stroke:#D55E00;fill:rgba(213,94,0,.15)}svg.draft rect.handle{fill:#fff;stroke:#D55E00;cursor:nwse-resize}
figure.editing svg.boxes{opacity:.45}mark{background:#ffe08a;padding:0 .1em}mark.disputed{background:#ffc9bd;outline:1px dashed #b35c00}mark.s1{background:#bfe3ff}
.filters label{margin:.2rem .8rem .2rem 0;display:inline-block}.pager{margin-top:.5rem}
.history{padding-left:1.2rem;margin:0}.history li{margin:.15rem 0}
svg.chart{width:100%;height:auto;display:block}h3{font-size:.95rem;margin:.6rem 0 .3rem}.charts{display:flex;flex-wrap:wrap;gap:1.5rem}.charts>div{flex:1 1 280px}
.signin label{display:block;margin-top:.5rem}.signin input{width:100%;max-width:24rem;font-size:1rem;min-height:2.4rem}.signin button{margin-top:.8rem;min-height:2.4rem}
.record dt{font-weight:600}.record dd{margin:0 0 .4rem 0}
@media (max-width:700px){main{padding:.5rem .5rem 6rem}.decide{position:static}
.decide .buttons{position:fixed;left:0;right:0;bottom:0;z-index:5;background:#fff;border-top:1px solid #ccc;padding:.4rem;flex-wrap:nowrap}
.decide .buttons button{flex:1;min-height:48px;font-size:1rem}kbd,.keys{display:none}header{flex-wrap:wrap}
.editor select,.editor input,.editor button,summary{min-height:44px}table{font-size:.9rem}}
`;

/** The reviewer pages' script (src/http/assets/review.js). */
export const REVIEW_SCRIPT_PATH = '/static/review.js';

/** `script`: the path of a same-origin script (the pages' CSP allows no inline script). */
export function layout(o: { title: string; user?: string; csrf?: string; body: Html; script?: string }): string {
  const nav = o.user
    ? html`<a href="/queue">Queue</a><span class="muted">${o.user}</span><form method="post" action="/logout"><input type="hidden" name="_csrf" value="${o.csrf}"><button>Sign out</button></form>`
    : EMPTY;
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${o.title} · qcflow review</title><style>${new Html(CSS)}</style></head>
<body><header><strong>qcflow review</strong>${nav}</header><main>${o.body}</main>${o.script && html`<script src="${o.script}" defer></script>`}</body></html>`.value;
}

/** Sign-in: name and password for people (when the server has users), a pasted token for everyone. */
export function loginPage(o: { csrf: string; error?: string; next?: string; passwords?: boolean; user?: string }): string {
  const hidden = html`<input type="hidden" name="_csrf" value="${o.csrf}"><input type="hidden" name="next" value="${o.next ?? '/queue'}">`;
  const tokenForm = html`<form method="post" action="/login" id="token-form">${hidden}
<label for="token">Token (from <code>qcflow token issue --user you --role reviewer</code>)</label>
<textarea id="token" name="token" required${!o.passwords && html` autofocus`} autocomplete="off" spellcheck="false"></textarea>
<button type="submit">Sign in with the token</button></form>`;
  return layout({
    title: 'Sign in',
    body: html`<h1>Sign in</h1>${o.error && html`<div class="error" role="alert">${o.error}</div>`}
${o.passwords
    ? html`<section><form method="post" action="/login" id="password-form" class="signin">${hidden}
<label for="username">Name</label><input id="username" name="username" autocomplete="username" required autofocus value="${o.user ?? ''}">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button></form></section>
<section><details><summary>Sign in with a token instead</summary>${tokenForm}</details></section>`
    : html`<section>${tokenForm}</section>`}`,
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

/** A decision the reviewer can still take back, with its countdown (the page's script ticks it and binds <kbd>u</kbd>). */
export function undoBar(undo: { taskId: string; decision: string; secondsLeft: number } | undefined, csrf: string): Html {
  if (!undo) return EMPTY;
  return html`<form method="post" action="/tasks/${undo.taskId}/undo" id="undo-form" class="note" role="status" data-seconds="${undo.secondsLeft}"><input type="hidden" name="_csrf" value="${csrf}">
Your <strong>${undo.decision}</strong> on task #${undo.taskId} takes effect in <span id="undo-seconds">${undo.secondsLeft}</span> s. <button id="undo">Undo <kbd>u</kbd></button></form>`;
}

/** The reviewer's latest decisions, each a link to its task (which shows the full record). */
export function historyList(history: Array<{ taskId: string; externalId: string; decision: string; status: string; decidedAt: string }>, now = new Date()): Html {
  if (!history.length) return EMPTY;
  return html`<section id="history"><h2>My recent decisions</h2><ol class="history">${history.map((d) => html`<li><a href="/tasks/${d.taskId}">#${d.taskId}</a> ${d.externalId}: <strong>${d.decision}</strong>${d.status === 'undone' && ' (undone)'}${d.status === 'deciding' && ' (can be undone)'} <span class="muted">${age(d.decidedAt, now)} ago</span></li>`)}</ol></section>`;
}

export function findingList(findings: Finding[]): Html {
  if (!findings.length) return EMPTY;
  return html`<ul>${findings.map((f) => html`<li><code>${f.rule}</code> ${f.pointer && html`<code>${f.pointer}</code> `}${f.message}</li>`)}</ul>`;
}

/** A JSON data block for a page's script: never executed (CSP allows no inline script), `<` escaped so no value can close it. */
export function jsonBlock(id: string, value: unknown): Html {
  return new Html(`<script type="application/json" id="${esc(id)}">${JSON.stringify(value).replace(/</g, '\\u003c')}</script>`);
}
