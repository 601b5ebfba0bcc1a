import type { Labels } from '../ingest/envelope';
import type { Finding } from '../qc/findings';
import type { TaskDetail } from '../review/service';
import { compareLabels, reasonInWords } from '../review/explain';
import { age, dueIn, EMPTY, findingList, historyList, html, Html, jsonBlock, layout, PALETTE, REVIEW_SCRIPT_PATH, undoBar } from './html';
import type { RecentDecision } from '../store/review';


const LAYER_NAMES: Record<number, string> = { 1: 'Compliance', 2: 'Consistency', 3: 'Plausibility', 4: 'Quality decay', 5: 'Fusion' };

const colour = (i: number): string => PALETTE[i % PALETTE.length]!;
const swatch = (i: number): Html => html`<i class="sw" style="border-color:${colour(i)}"></i>`;
const percent = (x: number): string => `${Math.round(x * 100)}%`;

/** Every annotator's boxes in their colour, and the consensus (what approve keeps) dashed over them. */
function boxesSvg(annotations: TaskDetail['annotations'], consensus: Labels | null, dontCare: TaskDetail['dontCareRegions']): Html {
  const shapes = annotations.flatMap((a, i) => (a.labels.boxes ?? []).map((b) =>
    html`<rect class="annotator" x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" fill="none" stroke="${colour(i)}" stroke-width="3" vector-effect="non-scaling-stroke"><title>${a.annotator}: ${b.class}</title></rect>`));
  const fused = (consensus?.boxes ?? []).map((b) =>
    html`<rect class="consensus" x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" fill="none" stroke="#fff" stroke-width="2" stroke-dasharray="6 4" vector-effect="non-scaling-stroke"><title>consensus: ${b.class}</title></rect>`);
  // A don't-care region (drawn by some, not others) is dotted grey: approve releases it as one.
  const doubtful = dontCare.map((b) =>
    html`<rect class="consensus dont-care" x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" fill="none" stroke="#bbb" stroke-width="2" stroke-dasharray="2 4" vector-effect="non-scaling-stroke"><title>don't care (only some drew it): ${b.class}</title></rect>`);
  return shapes.length || fused.length || doubtful.length ? html`<svg class="boxes" preserveAspectRatio="none" aria-hidden="true">${shapes}${fused}${doubtful}</svg>` : EMPTY;
}

function annotatorHeading(a: { annotator: string }, i: number, reliability: Record<string, number>): Html {
  const acc = reliability[a.annotator];
  return html`${swatch(i)}${a.annotator}<br><span class="muted">${acc === undefined ? 'no record yet' : `${percent(acc)} accurate`}</span>`;
}

/** The annotators' labels side by side, a cell marked where it is not what the consensus settled on. */
function comparisonTable(d: TaskDetail): Html {
  const text = typeof d.sample.payload.text === 'string' ? d.sample.payload.text : undefined;
  const rows = compareLabels(d.annotations, d.consensus, text);
  if (!rows.length) return html`<p class="muted">No labels to compare.</p>`;
  const differing = rows.filter((r) => r.values.some((v) => v.differs)).length;
  return html`<p id="differ-count">${differing ? `${differing} of ${rows.length} field${rows.length > 1 ? 's' : ''} differ (marked ≠).` : 'The annotators agree on every field.'}</p>
<div class="scroll"><table id="comparison"><thead><tr><th>Field</th>${d.annotations.map((a, i) => html`<th>${annotatorHeading(a, i, d.reliability)}</th>`)}<th>Consensus</th></tr></thead>
<tbody>${rows.map((r) => html`<tr><th>${r.field}</th>${r.values.map((v) => html`<td class="${v.differs ? 'differs' : ''}">${v.text}${v.parts ? html`<ul class="span-diffs">${v.parts.map((p) => html`<li class="span-diff">${p}</li>`)}</ul>` : EMPTY}</td>`)}<td>${r.consensus}</td></tr>`)}</tbody></table></div>`;
}

function labelsList(labels: Labels): Html {
  const parts: Html[] = [];
  if (labels.classes) parts.push(html`<li>class: ${labels.classes.join(', ') || '—'}</li>`);
  for (const [k, v] of Object.entries(labels.attributes ?? {})) parts.push(html`<li>${k}: ${String(v)}</li>`);
  for (const b of labels.boxes ?? []) parts.push(html`<li>box ${b.class} at ${b.x}, ${b.y} size ${b.w}×${b.h}${b.attributes && ` (${Object.entries(b.attributes).map(([k, v]) => `${k} ${String(v)}`).join(', ')})`}</li>`);
  for (const sp of labels.spans ?? []) parts.push(html`<li>span ${sp.label} ${sp.start}–${sp.end}</li>`);
  return parts.length ? html`<ul>${parts}</ul>` : html`<p class="muted">no labels</p>`;
}

/** A decided task: who decided what and when, the note, the labels a correction set. */
function decisionRecord(d: TaskDetail): Html {
  const t = d.task;
  if (!t.decision) return html`<p>Status: ${t.status}</p>`;
  return html`<dl class="record" id="record"><dt>Decision</dt><dd>${t.decision} by ${t.decidedBy}${t.decidedAt && ` at ${t.decidedAt.replace('T', ' ').slice(0, 19)} UTC`}${t.status === 'deciding' && ' (takes effect when its undo window closes)'}${t.status === 'undone' && ' (taken back by the reviewer; not applied)'}</dd>
<dt>Note</dt><dd>${t.comment ?? html`<span class="muted">none</span>`}</dd>
${d.record?.labels && html`<dt>Labels set</dt><dd>${labelsList(d.record.labels)}</dd>`}
${d.record?.refused && html`<dt>Not applied</dt><dd class="fail">${d.record.refused}</dd>`}</dl>`;
}

function decisionForm(d: TaskDetail, csrf: string, drafts: { labels?: string; comment?: string }): Html {
  const { task, can } = d;
  if (can.decide) {
    const draft = drafts.labels ?? JSON.stringify(d.consensus ?? d.annotations[0]?.labels ?? {}, null, 2);
    return html`<form method="post" action="/tasks/${task.id}/decide" id="decide"><input type="hidden" name="_csrf" value="${csrf}">
<div class="buttons"><button name="decision" value="approve" id="approve">Approve <kbd>a</kbd></button><button name="decision" value="reject" id="reject">Reject <kbd>r</kbd></button>
<button name="decision" value="resample" id="resample">Resample <kbd>s</kbd></button></div>
<details id="correct-box"${drafts.labels !== undefined && new Html(' open')}><summary>Correct the labels <kbd>c</kbd></summary>
${d.dontCareRegions.length > 0 && html`<p class="muted" id="dont-care-note">${d.dontCareRegions.length} ${d.dontCareRegions.length === 1 ? 'region' : 'regions'} only some annotators drew (grey, dotted) ${d.dontCareRegions.length === 1 ? 'is' : 'are'} released as don't-care if you approve; a correction holds only the boxes in it, so draw one where you see an object.</p>`}
<div class="editor" id="editor"></div>
<details id="json-box"><summary>Edit as JSON</summary><label for="labels">Final labels (JSON)</label><textarea id="labels" name="labels" spellcheck="false">${draft}</textarea></details>
<button name="decision" value="correct" id="correct">Submit correction <kbd>Ctrl</kbd>+<kbd>Enter</kbd></button></details>
<label for="comment">Note (optional)</label><input id="comment" name="comment" maxlength="2000" style="width:100%" value="${drafts.comment ?? ''}">
</form><p class="muted keys">Keys: <kbd>a</kbd> approve · <kbd>r</kbd> reject · <kbd>s</kbd> resample · <kbd>c</kbd> correct (then <kbd>0</kbd> consensus, <kbd>1</kbd>–<kbd>9</kbd> an annotator's labels, arrows move the selected box, <kbd>Shift</kbd> ×10, <kbd>Alt</kbd> resizes, <kbd>Del</kbd> removes it) · <kbd>q</kbd> queue</p>`;
  }
  if (can.claim) return html`<form method="post" action="/tasks/${task.id}/claim"><input type="hidden" name="_csrf" value="${csrf}"><button id="claim" autofocus>Claim this task <kbd>Enter</kbd></button></form>`;
  if (task.status === 'open') {
    return html`<p id="held">Held by <strong>${task.assignee ?? 'nobody'}</strong>${task.claimExpiresAt && ` until ${task.claimExpiresAt.replace('T', ' ').slice(0, 16)} UTC`}${task.audience === 'leads' && ' (escalated to the project’s leads)'}.</p>`;
  }
  return decisionRecord(d);
}

/** The decision page: why the sample is here, the sample with every annotator's boxes, where they differ, each layer's findings, the decision form and label editor. */
export function taskPage(o: {
  user: string; csrf: string; detail: TaskDetail; error?: { message: string; findings?: Finding[] }; labelsDraft?: string; commentDraft?: string; note?: string;
  undo?: { taskId: string; decision: string; secondsLeft: number }; history?: RecentDecision[];
}): string {
  const d = o.detail;
  const { task, sample, annotations, layers, consensus } = d;
  const text = typeof sample.payload.text === 'string' ? html`<div class="text" id="sample-text">${sample.payload.text}</div>` : EMPTY;
  const otherFields = Object.entries(sample.payload).filter(([k]) => k !== 'text' || typeof sample.payload.text !== 'string');
  const media = sample.media.map((m) => html`<figure><img src="${m.url}" alt="${m.key}">${boxesSvg(annotations, consensus, d.dontCareRegions)}</figure>`);
  const legend = annotations.map((a, i) => html`<span>${swatch(i)}${a.annotator}</span>`);
  const layerRows = layers.map((l) => html`<tr><td>${l.layer} ${LAYER_NAMES[l.layer] ?? ''}</td><td class="${l.passed ? 'pass' : 'fail'}">${l.passed ? 'passed' : 'flagged'}</td>
<td>${l.score === null ? '—' : l.score.toFixed(3)}${l.modelVersion && html`<br><span class="muted">${l.modelVersion}</span>`}</td><td>${l.findings.length ? findingList(l.findings) : html`<span class="muted">no findings</span>`}</td></tr>`);
  const error = o.error ? html`<div class="error" role="alert"><strong>${o.error.message}</strong>${findingList(o.error.findings ?? [])}</div>` : EMPTY;
  const why = layers.find((l) => l.layer === 5)?.findings ?? [];
  return layout({
    title: `Task ${task.id}`, user: o.user, csrf: o.csrf,
    body: html`<h1>Task #${task.id} · ${task.project} · <span class="muted">${sample.externalId}</span></h1>${error}${o.note && html`<div class="note" role="status">${o.note}</div>`}${undoBar(o.undo, o.csrf)}
<div id="restored" class="note" hidden></div>
<div class="grid"><div>
<section id="why"><h2>Why you see this</h2><p><strong>${reasonInWords(task.reason)}</strong></p>
<p class="muted">${task.round > 0 && `Round ${task.round}. `}Waiting ${age(task.createdAt)}, due ${dueIn(task.dueAt)}.</p>${findingList(why)}</section>
<section><h2>Sample</h2>${text}${media}${media.length > 0 && legend.length > 0 && html`<p class="legend">${legend}<span><i class="sw" style="border-color:#999;border-style:dashed"></i>consensus</span>${d.dontCareRegions.length > 0 && html`<span><i class="sw" style="border-color:#bbb;border-style:dotted"></i>don't care</span>`}</p>`}
${otherFields.length > 0 && html`<div class="scroll"><table>${otherFields.map(([k, v]) => html`<tr><th>${k}</th><td><pre>${typeof v === 'string' ? v : JSON.stringify(v)}</pre></td></tr>`)}</table></div>`}</section>
<section><h2>Where the annotators differ</h2>${comparisonTable(d)}</section>
<section><h2>QC layers</h2><div class="scroll"><table><thead><tr><th>Layer</th><th>Result</th><th>Score</th><th>Findings</th></tr></thead><tbody>${layerRows}</tbody></table></div></section>
</div><div><section class="decide" id="decision"><h2>Decision</h2>${decisionForm(d, o.csrf, { labels: o.labelsDraft, comment: o.commentDraft })}</section>${historyList(o.history ?? [])}</div></div>
${jsonBlock('task-data', {
  taskId: task.id, open: d.can.decide, decided: task.status === 'decided' || task.status === 'deciding', refused: o.error !== undefined, ontology: d.ontology, palette: PALETTE,
  annotations: annotations.map((a) => ({ annotator: a.annotator, labels: a.labels })), consensus, dontCare: d.dontCareRegions, text: typeof sample.payload.text === 'string' ? sample.payload.text : null,
})}`,
    script: REVIEW_SCRIPT_PATH,
  });
}
