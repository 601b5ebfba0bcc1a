import type { Labels } from '../ingest/envelope';
import { iou } from '../qc/consistency/matching';

/**
 * What a reviewer reads before deciding: why the sample is here, in words, and where the annotators part
 * from the consensus, field by field. Pure, so the page and its tests agree on the wording.
 */

const REASONS: Record<string, string> = {
  audit: 'A random audit: the machine would have accepted this sample. Your decision measures how often it is right.',
  annotator_alert: 'The machine would have accepted this sample, but one of its annotators is under a quality-decay alert, so a share of their work is checked.',
  uncertain: 'The annotators’ labels leave too much doubt to accept them without a person.',
  layer2_conflict: 'The annotators’ labels conflict, or break the project’s ontology, in a way no vote settles (the findings say which).',
  layer3_error: 'The plausibility model could not judge this sample.',
  escalated: 'The reviewer before you did not decide within the SLA, so the task came to you.',
  correction_refused: 'A correction made earlier no longer passed the project’s checks, so the sample is back for a decision.',
  undone: 'A reviewer took their decision back within the undo window.',
};

/** Why a sample can be in review; the queue filters by these. */
export const REVIEW_REASONS = Object.keys(REASONS);

export function reasonInWords(reason: string): string {
  return REASONS[reason] ?? `Sent to review (${reason}).`;
}

export interface ComparisonRow {
  /** `class`, `attribute topic`, `boxes`, `spans`. */
  field: string;
  consensus: string;
  /** One per annotator, in annotation order; `parts`: where a long list differs, just the differences. */
  values: Array<{ text: string; differs: boolean; parts?: string[] }>;
}

/** Up to this many spans a cell lists them all; past it (a news article holds 50–150) a cell says what differs. */
const SPANS_LISTED = 6;

type Box = NonNullable<Labels['boxes']>[number];
type Span = NonNullable<Labels['spans']>[number];

/** Boxes whose best overlap with the consensus box is under this read as placed differently. */
const BOX_AGREES = 0.7;

function describeBoxes(boxes: Box[], reference: Box[] | undefined): { text: string; differs: boolean } {
  if (!boxes.length) return { text: 'no boxes', differs: (reference?.length ?? 0) > 0 };
  let differs = reference !== undefined && reference.length !== boxes.length;
  const parts = boxes.map((b) => {
    if (!reference) return b.class;
    const best = reference.reduce((m, r) => Math.max(m, r.class === b.class ? iou(b, r) : 0), 0);
    if (best < BOX_AGREES) differs = true;
    return best >= BOX_AGREES ? b.class : `${b.class} (overlap ${best.toFixed(2)})`;
  });
  return { text: parts.join(', '), differs };
}

function spansOf(labels: Labels, text: string | undefined): string[] {
  return (labels.spans ?? []).map((s) => `${text ? `“${text.slice(s.start, s.end)}”` : `${s.start}–${s.end}`} ${s.label}`).sort();
}

/**
 * Rows of the annotators' labels against the consensus: one per field any of them gave. A cell differs
 * when it is not what the consensus settled on; with no consensus, when annotators differ among themselves.
 */
export function compareLabels(annotations: Array<{ labels: Labels }>, consensus: Labels | null, text?: string): ComparisonRow[] {
  const rows: ComparisonRow[] = [];
  const all = annotations.map((a) => a.labels);
  const against = (values: string[], settled: string | undefined): ComparisonRow['values'] => {
    const reference = settled ?? values[0];
    return values.map((v) => ({ text: v, differs: v !== reference }));
  };
  if (all.some((l) => l.classes) || consensus?.classes) {
    const values = all.map((l) => (l.classes?.length ? [...l.classes].sort().join(', ') : '—'));
    const settled = consensus?.classes ? [...consensus.classes].sort().join(', ') : undefined;
    rows.push({ field: 'class', consensus: settled ?? '—', values: against(values, settled) });
  }
  const keys = [...new Set([...all.flatMap((l) => Object.keys(l.attributes ?? {})), ...Object.keys(consensus?.attributes ?? {})])].sort();
  for (const k of keys) {
    const values = all.map((l) => (l.attributes?.[k] === undefined ? '—' : String(l.attributes[k])));
    const settled = consensus?.attributes?.[k] === undefined ? undefined : String(consensus.attributes[k]);
    rows.push({ field: `attribute ${k}`, consensus: settled ?? '—', values: against(values, settled) });
  }
  if (all.some((l) => l.boxes?.length) || consensus?.boxes?.length) {
    const reference = consensus?.boxes ?? all[0]?.boxes ?? [];
    rows.push({ field: 'boxes', consensus: consensus ? describeBoxes(consensus.boxes ?? [], undefined).text : '—', values: all.map((l) => describeBoxes(l.boxes ?? [], reference)) });
  }
  if (all.some((l) => l.spans?.length) || consensus?.spans?.length) {
    const lists = all.map((l) => spansOf(l, text));
    const settledList = consensus ? spansOf(consensus, text) : undefined;
    if (Math.max(settledList?.length ?? 0, ...lists.map((l) => l.length)) <= SPANS_LISTED) {
      const settled = settledList ? settledList.join('; ') || 'no spans' : undefined;
      rows.push({ field: 'spans', consensus: settled ?? '—', values: against(lists.map((l) => l.join('; ') || 'no spans'), settled) });
    } else {
      // Against the consensus (or the first annotator), span by span where it stands: what this annotator
      // has that it lacks (+) and lacks that it has (−), in text order (− first where both stand at one place).
      const reference = consensus?.spans ?? all[0]?.spans ?? [];
      const at = (sp: Span): string => `${sp.start}:${sp.end}:${sp.label}`;
      const say = (sp: Span): string => `${text ? `“${text.slice(sp.start, sp.end)}”` : `${sp.start}–${sp.end}`} ${sp.label}`;
      const theirs = new Set(reference.map(at));
      const values = all.map((l) => {
        const own = l.spans ?? [];
        const mine = new Set(own.map(at));
        const added = own.filter((sp) => !theirs.has(at(sp)));
        const lacking = reference.filter((sp) => !mine.has(at(sp)));
        const parts = [...lacking.map((sp) => ({ sp, p: `− ${say(sp)}` })), ...added.map((sp) => ({ sp, p: `+ ${say(sp)}` }))].sort((x, y) => x.sp.start - y.sp.start).map((x) => x.p);
        const whom = consensus ? 'the consensus' : 'the first';
        return parts.length ? { text: `${own.length - added.length} of ${reference.length} as ${whom}; differs:`, differs: true, parts } : { text: `all ${own.length} as ${whom}`, differs: false };
      });
      rows.push({ field: 'spans', consensus: settledList ? `${settledList.length} spans` : '—', values });
    }
  }
  return rows;
}
