import { AGE_BANDS } from '../qc/dashboard';
import type { ProjectDashboard } from '../review/service';
import { barsSvg, heatmapSvg, intervalsSvg, linesSvg } from './charts';
import { html, layout, type Html } from './html';

const day = (d: Date): string => d.toISOString().slice(5, 10);
const pct = (x: number): string => `${Math.round(x * 100)}%`;
const seconds = (ms: number): string => (ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`);

function heatmaps(d: ProjectDashboard): Html {
  const h = d.heatmap;
  // Windows within two days of each other are told apart by the hour.
  const span = h.end && h.windows[0] ? h.end.getTime() - h.windows[0].getTime() : 0;
  const columns = h.windows.map((w) => (span < 2 * 86_400_000 ? w.toISOString().slice(5, 16).replace('T', ' ') : day(w)));
  const rows = h.rows.map((r) => r.annotator);
  const agreement = heatmapSvg({
    id: 'heatmap-agreement', title: 'Agreement with the consensus per annotator and window', rows, columns, legend: ['50%', '100%'],
    cell: (r, c) => {
      const cell = h.rows[r]!.cells[c]!;
      // 50–100% spans the scale: below half, an annotator is as good as a coin on two classes.
      return cell.agreement === null
        ? { t: null, text: '', tip: `${rows[r]}: no labels compared in the window from ${columns[c]}` }
        : { t: (cell.agreement - 0.5) / 0.5, text: pct(cell.agreement), tip: `${rows[r]}, window from ${columns[c]}: ${pct(cell.agreement)} of ${Math.round(cell.compared)} labels agreed` };
    },
  });
  const medians = h.rows.flatMap((r) => r.cells.map((c) => c.medianMs)).filter((m): m is number => m !== null);
  const [lo, hi] = medians.length ? [Math.log(Math.min(...medians)), Math.log(Math.max(...medians))] : [0, 1];
  const speed = heatmapSvg({
    id: 'heatmap-speed', title: 'Median annotation time per annotator and window', rows, columns, legend: ['fastest', 'slowest'],
    cell: (r, c) => {
      const m = h.rows[r]!.cells[c]!.medianMs;
      return m === null ? { t: null, text: '', tip: `${rows[r]}: no timings in the window from ${columns[c]}` } : { t: hi > lo ? (Math.log(m) - lo) / (hi - lo) : 0.5, text: seconds(m), tip: `${rows[r]}, window from ${columns[c]}: median ${seconds(m)} per annotation` };
    },
  });
  return html`<section><h2>Annotators over time</h2><p class="muted">Windows of data time (when the labels were made)${h.end && `, up to ${h.end.toISOString().slice(0, 16).replace('T', ' ')} UTC`}; most active annotators first. A sudden dark cell in agreement, or a light one in speed (rushing), is what layer 4 alerts on.</p>
<h3>Agreement with the consensus</h3><div class="scroll">${agreement}</div><h3>Median time per annotation</h3><div class="scroll">${speed}</div></section>`;
}

function stream(d: ProjectDashboard): Html {
  const pts = d.stream.map((p) => p.at.getTime());
  const w = d.streamWindow;
  const ks = w?.ks ? `KS D = ${w.ks.d.toFixed(3)}, p = ${w.ks.p.toExponential(2)} (${w.ks.n} recent vs ${w.ks.m} reference layer-3 scores)` : (w?.note ?? 'no layer-3 scores to compare yet');
  return html`<section><h2>The stream</h2><p>Stability <strong id="stability">${w ? w.stability.toFixed(3) : 'n/a'}</strong> (1 = recent scores look like the reference) · ${ks}</p>
<div class="scroll">${linesSvg({
    id: 'stream-lines', title: 'Stream agreement and mean layer-3 score per batch',
    series: [
      { name: 'layer-2 agreement', colour: '#0072B2', points: d.stream.map((p, i) => ({ x: pts[i]!, y: p.agreement, tip: `${day(p.at)}: agreement ${p.agreement?.toFixed(3) ?? 'n/a'} over ${p.n} samples` })) },
      { name: 'mean layer-3 score', colour: '#D55E00', points: d.stream.map((p, i) => ({ x: pts[i]!, y: p.meanScore, tip: `${day(p.at)}: mean score ${p.meanScore?.toFixed(3) ?? 'n/a'}` })) },
    ],
  })}</div></section>`;
}

function alerts(d: ProjectDashboard): Html {
  if (!d.alerts.length) return html`<section id="alerts"><h2>Decay alerts</h2><p class="pass">None open.</p></section>`;
  return html`<section id="alerts"><h2>Decay alerts (${d.alerts.length} open)</h2><div class="scroll"><table><thead><tr><th>Who</th><th>Metric</th><th>Recent</th><th>Reference</th><th>Worse by</th><th>Since batch</th></tr></thead><tbody>
${d.alerts.map((a) => html`<tr><td>${a.subject === '*' ? 'the stream' : a.subject}</td><td>${a.metric}</td><td>${a.shortValue.toFixed(3)}</td><td>${a.referenceValue.toFixed(3)}</td><td class="fail">${a.delta.toFixed(3)} (threshold ${a.threshold})</td><td>${a.openedBatch}</td></tr>`)}</tbody></table></div></section>`;
}

function reviews(d: ProjectDashboard): Html {
  const open = d.openAges.reduce((a, b) => a + b, 0);
  return html`<section><h2>Review queue</h2><div class="charts"><div><h3>Open tasks by age (${open})</h3>${barsSvg({ id: 'queue-age', title: 'Open review tasks by age', labels: AGE_BANDS.map((b) => b.label), values: d.openAges, colour: '#E69F00' })}</div>
<div><h3>Decisions per day (14 days)</h3>${barsSvg({ id: 'throughput', title: 'Review decisions per day', labels: d.throughput.map((t) => t.day.slice(5)), values: d.throughput.map((t) => t.n), colour: '#009E73' })}</div></div></section>`;
}

function precision(d: ProjectDashboard): Html {
  const p = d.precision;
  const items = [
    { label: 'all audited', value: p.overall.precision, interval: p.overall.interval, n: p.overall.reviewed },
    ...Object.entries(p.byReason).map(([reason, g]) => ({ label: reason, value: g.precision, interval: g.interval, n: g.reviewed })),
    ...p.byModelVersion.filter((g) => g.modelVersion).map((g) => ({ label: g.modelVersion!, value: g.precision, interval: g.interval, n: g.reviewed })),
  ];
  const lo = Math.min(0.8, ...items.flatMap((i) => (i.interval ? [Math.floor(i.interval[0] * 10) / 10] : [])));
  return html`<section><h2>Precision of auto-accepted samples</h2><p class="muted">Share of samples the machine would have accepted that reviewers upheld (audit share and alerted annotators), with 95% Wilson intervals. ${p.calibration.ece !== null && `Calibration of the error estimate: ECE ${p.calibration.ece.toFixed(3)} over ${p.calibration.reviewed} reviews${p.calibration.rawEce !== null ? ` (${p.calibration.rawEce.toFixed(3)} before recalibration)` : ''}.`}</p>
${intervalsSvg({ id: 'precision', title: 'Precision of auto-acceptance with 95% intervals', lo, items })}</section>`;
}

/** A project's quality at a glance: plots, not tables of numbers. */
export function dashboardPage(o: { user: string; csrf: string; dashboard: ProjectDashboard }): string {
  const d = o.dashboard;
  return layout({
    title: `Quality · ${d.project}`, user: o.user, csrf: o.csrf,
    body: html`<h1>Quality of ${d.project}</h1>${alerts(d)}${heatmaps(d)}${stream(d)}${reviews(d)}${precision(d)}`,
  });
}
