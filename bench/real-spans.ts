/**
 * Real long texts with many spans, annotated twice: the CoNLL-2003 English test set (Reuters news, 231
 * documents, 4 entity types) and CoNLL++ (Wang et al. 2019, github.com/ZihanWangKi/CrossWeigh
 * `data/conllpp_test.txt`), the same tokens relabelled where the original was wrong. Pure logic for
 * `npm run bench -- review-real`: each document as one text (a sentence a line) with character-offset spans per annotation.
 */
export interface Span {
  start: number;
  end: number;
  label: string;
}

export interface ConllDocument {
  text: string;
  spans: Span[];
}

/** The documents of a CoNLL file (token … tag per line, `-DOCSTART-` between documents), tokens joined by spaces. */
export function readConll(file: string): ConllDocument[] {
  const docs: ConllDocument[] = [];
  let tokens: Array<{ word: string; tag: string; sentenceStart: boolean }> = [];
  let sentenceStart = true;
  const flush = (): void => {
    if (tokens.length === 0) return;
    let text = '';
    const spans: Span[] = [];
    let open: Span | undefined;
    for (const t of tokens) {
      const start = text.length === 0 ? 0 : text.length + 1;
      text = text.length === 0 ? t.word : `${text}${t.sentenceStart ? '\n' : ' '}${t.word}`;
      const [bio, label] = t.tag.split('-') as [string, string | undefined];
      // IOB1 (I- may open an entity) and IOB2 both read: an entity continues only under I- of the same type.
      if (bio === 'O' || !label) { open = undefined; continue; }
      if (bio === 'I' && open && open.label === label) { open.end = text.length; continue; }
      open = { start, end: text.length, label };
      spans.push(open);
    }
    docs.push({ text, spans });
    tokens = [];
  };
  for (const line of file.split('\n')) {
    if (line.startsWith('-DOCSTART-')) { flush(); continue; }
    const cols = line.trim().split(/\s+/);
    if (cols.length < 2) { sentenceStart = true; continue; }
    tokens.push({ word: cols[0]!, tag: cols[cols.length - 1]!, sentenceStart });
    sentenceStart = false;
  }
  flush();
  return docs;
}

const key = (s: Span): string => `${s.start}:${s.end}:${s.label}`;

/** Spans in one set and not the other, both ways. */
export function spanDifference(a: Span[], b: Span[]): { onlyA: Span[]; onlyB: Span[] } {
  const ka = new Set(a.map(key));
  const kb = new Set(b.map(key));
  return { onlyA: a.filter((s) => !kb.has(key(s))), onlyB: b.filter((s) => !ka.has(key(s))) };
}
