import type { Finding } from '../qc/findings';

/** Deepest nesting a sample may have: far beyond real labels, far below a stack overflow in hashing. */
export const MAX_DEPTH = 64;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Why a parsed line cannot be stored (Postgres text and jsonb refuse U+0000 and unpaired surrogates) or
 * hashed (nesting past MAX_DEPTH overflows the stack), or undefined when it can. Walks iteratively, so the
 * check itself survives any depth. Such a line is a rejection of its own, never a retry of its batch.
 */
export function unstorable(value: unknown, maxDepth = MAX_DEPTH): Finding | undefined {
  const stack: Array<{ v: unknown; depth: number; pointer: string }> = [{ v: value, depth: 0, pointer: '' }];
  const text = (s: string, pointer: string, what: string): Finding | undefined => {
    if (s.includes('\u0000')) return { layer: 1, pointer, rule: 'json.nul', message: `${what} contains U+0000 (NUL), which cannot be stored; remove it upstream` };
    if (LONE_SURROGATE.test(s)) return { layer: 1, pointer, rule: 'json.surrogate', message: `${what} contains an unpaired UTF-16 surrogate (not a Unicode character); fix the encoding upstream` };
    return undefined;
  };
  while (stack.length > 0) {
    const { v, depth, pointer } = stack.pop()!;
    if (typeof v === 'string') {
      const bad = text(v, pointer, 'the value');
      if (bad) return bad;
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= maxDepth) return { layer: 1, pointer, rule: 'json.depth', message: `nested deeper than ${maxDepth} levels; flatten the structure upstream` };
    for (const [k, child] of Object.entries(v)) {
      const at = `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      const bad = text(k, at, 'the key');
      if (bad) return { ...bad, pointer: pointer || '/' };
      stack.push({ v: child, depth: depth + 1, pointer: at });
    }
  }
  return undefined;
}

/** Text safe to store and show whatever it came from: NUL and unpaired surrogates become U+FFFD. */
export function safeText(s: string): string {
  return s.replace(/\u0000/g, '\ufffd').replace(new RegExp(LONE_SURROGATE.source, 'g'), '\ufffd');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * One staged line read as bytes (a latin1 string, one character per byte) decoded as UTF-8; invalid
 * UTF-8 is a finding rather than silently becoming U+FFFD, which would store different text than was sent.
 */
export function decodeUtf8Line(bytes: string): { text: string; finding?: Finding } {
  const buf = Buffer.from(bytes, 'latin1');
  try {
    return { text: utf8.decode(buf) };
  } catch {
    return { text: safeText(buf.toString('utf8')), finding: { layer: 1, pointer: '', rule: 'utf8.invalid', message: 'the line is not valid UTF-8; re-encode it upstream' } };
  }
}
