import { EMPTY, html, type Html } from './html';

/**
 * Small server-drawn SVG charts for the dashboard: no script, no library, readable without colour (every
 * cell and bar carries its number as a tooltip and, where it fits, as text).
 */

/** Viridis, sampled: perceptually even and legible with the common colour-vision deficiencies. */
const VIRIDIS = ['#440154', '#3b528b', '#21918c', '#5ec962', '#fde725'];

export function viridis(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const mix = (a: string, b: string, f: number): string => {
    const ch = (s: string, k: number): number => parseInt(s.slice(1 + 2 * k, 3 + 2 * k), 16);
    return `#${[0, 1, 2].map((k) => Math.round(ch(a, k) + (ch(b, k) - ch(a, k)) * f).toString(16).padStart(2, '0')).join('')}`;
  };
  return mix(VIRIDIS[i]!, VIRIDIS[i + 1]!, x - i);
}

/** A grid of coloured cells: rows × columns, each cell's value in [0, 1] for its colour (null: blank), its text and tooltip. */
export function heatmapSvg(o: {
  id: string; title: string; rows: string[]; columns: string[];
  cell: (row: number, col: number) => { t: number | null; text: string; tip: string };
  legend: [string, string];
}): Html {
  if (!o.rows.length || !o.columns.length) return html`<p class="muted">No data yet.</p>`;
  const cw = 68, ch = 24, left = 120, top = 22;
  const width = left + cw * o.columns.length + 4, height = top + ch * o.rows.length + 30;
  const cells = o.rows.flatMap((_, r) => o.columns.map((__, c) => {
    const v = o.cell(r, c);
    const fill = v.t === null ? '#f1f1f1' : viridis(v.t);
    const dark = v.t !== null && v.t < 0.55;
    return html`<g><rect x="${left + c * cw}" y="${top + r * ch}" width="${cw - 2}" height="${ch - 2}" fill="${fill}"><title>${v.tip}</title></rect>
<text x="${left + c * cw + (cw - 2) / 2}" y="${top + r * ch + 16}" text-anchor="middle" font-size="11" fill="${dark ? '#fff' : '#111'}">${v.text}</text></g>`;
  }));
  const rowLabels = o.rows.map((r, i) => html`<text x="${left - 6}" y="${top + i * ch + 16}" text-anchor="end" font-size="12">${r}</text>`);
  const colLabels = o.columns.map((c, i) => html`<text x="${left + i * cw + (cw - 2) / 2}" y="${top - 7}" text-anchor="middle" font-size="10">${c}</text>`);
  const legendY = top + ch * o.rows.length + 14;
  const ramp = Array.from({ length: 20 }, (_, i) => html`<rect x="${left + i * 8}" y="${legendY}" width="8" height="8" fill="${viridis(i / 19)}"/>`);
  return html`<svg id="${o.id}" class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${o.title}" style="max-width:${width}px">
${cells}${rowLabels}${colLabels}${ramp}<text x="${left - 6}" y="${legendY + 8}" text-anchor="end" font-size="10">${o.legend[0]}</text><text x="${left + 166}" y="${legendY + 8}" font-size="10">${o.legend[1]}</text></svg>`;
}

/** Vertical bars with their values. */
export function barsSvg(o: { id: string; title: string; labels: string[]; values: number[]; colour?: string }): Html {
  if (!o.values.length) return EMPTY;
  const bw = Math.max(14, Math.min(48, Math.floor(560 / o.values.length))), h = 120, top = 14, left = 8;
  const max = Math.max(1, ...o.values);
  const width = left + bw * o.values.length + 8, height = top + h + 34;
  const bars = o.values.map((v, i) => {
    const bh = (v / max) * h;
    return html`<g><rect x="${left + i * bw}" y="${top + h - bh}" width="${bw - 3}" height="${bh}" fill="${o.colour ?? '#0072B2'}"><title>${o.labels[i]}: ${v}</title></rect>
<text x="${left + i * bw + (bw - 3) / 2}" y="${top + h - bh - 3}" text-anchor="middle" font-size="10">${v}</text>
<text x="${left + i * bw + (bw - 3) / 2}" y="${top + h + 13}" text-anchor="middle" font-size="9">${o.labels[i]}</text></g>`;
  });
  return html`<svg id="${o.id}" class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${o.title}" style="max-width:${width}px">${bars}</svg>`;
}

/** One or two lines over time, values in [0, 1]. */
export function linesSvg(o: { id: string; title: string; series: Array<{ name: string; colour: string; points: Array<{ x: number; y: number | null; tip: string }> }> }): Html {
  const all = o.series.flatMap((s) => s.points);
  if (all.filter((p) => p.y !== null).length < 1) return html`<p class="muted">No data yet.</p>`;
  const w = 560, h = 140, left = 34, top = 10;
  const xs = all.map((p) => p.x);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const X = (x: number): number => left + (x1 === x0 ? w / 2 : ((x - x0) / (x1 - x0)) * w);
  const Y = (y: number): number => top + (1 - y) * h;
  const grid = [0, 0.25, 0.5, 0.75, 1].map((g) => html`<line x1="${left}" x2="${left + w}" y1="${Y(g)}" y2="${Y(g)}" stroke="#e3e3e3"/><text x="${left - 4}" y="${Y(g) + 3}" text-anchor="end" font-size="9">${g.toFixed(2)}</text>`);
  const lines = o.series.map((s) => {
    const pts = s.points.filter((p) => p.y !== null);
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${X(p.x).toFixed(1)},${Y(p.y!).toFixed(1)}`).join('');
    return html`<path d="${d}" fill="none" stroke="${s.colour}" stroke-width="2"/>${pts.map((p) => html`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y!).toFixed(1)}" r="3" fill="${s.colour}"><title>${p.tip}</title></circle>`)}`;
  });
  const legend = o.series.map((s, i) => html`<rect x="${left + i * 180}" y="${top + h + 14}" width="10" height="10" fill="${s.colour}"/><text x="${left + i * 180 + 14}" y="${top + h + 23}" font-size="11">${s.name}</text>`);
  return html`<svg id="${o.id}" class="chart" viewBox="0 0 ${left + w + 10} ${top + h + 30}" role="img" aria-label="${o.title}" style="max-width:${left + w + 10}px">${grid}${lines}${legend}</svg>`;
}

/** Points with their 95% intervals on [lo, 1]: how precise a small audit sample really is. */
export function intervalsSvg(o: { id: string; title: string; lo: number; items: Array<{ label: string; value: number | null; interval: [number, number] | null; n: number }> }): Html {
  const items = o.items.filter((i) => i.value !== null && i.interval);
  if (!items.length) return html`<p class="muted">No audited samples decided yet.</p>`;
  const w = 420, left = 170, rowH = 24, top = 8;
  const X = (v: number): number => left + ((Math.max(o.lo, v) - o.lo) / (1 - o.lo)) * w;
  const rows = items.map((it, i) => {
    const y = top + i * rowH + 10;
    return html`<g><text x="${left - 8}" y="${y + 4}" text-anchor="end" font-size="11">${it.label} (n=${it.n})</text>
<line x1="${X(it.interval![0])}" x2="${X(it.interval![1])}" y1="${y}" y2="${y}" stroke="#0072B2" stroke-width="3"/>
<circle cx="${X(it.value!)}" cy="${y}" r="5" fill="#D55E00"><title>${it.label}: ${(it.value! * 100).toFixed(1)}% upheld, 95% interval ${(it.interval![0] * 100).toFixed(1)}–${(it.interval![1] * 100).toFixed(1)}%</title></circle></g>`;
  });
  const height = top + items.length * rowH + 22;
  const ticks = [o.lo, (o.lo + 1) / 2, 1].map((t) => html`<text x="${X(t)}" y="${height - 4}" text-anchor="middle" font-size="10">${(t * 100).toFixed(0)}%</text>`);
  return html`<svg id="${o.id}" class="chart" viewBox="0 0 ${left + w + 20} ${height}" role="img" aria-label="${o.title}" style="max-width:${left + w + 20}px">${rows}${ticks}</svg>`;
}
