/*
 * Turning source values into text. Free text (reason, remarks) is cleaned and, if need be,
 * cut; identifiers (user id, key, type code, region id) are never altered beyond trimming,
 * because changing an identifier silently could point at someone else.
 */

/** NULL / undefined, or a string of only whitespace. */
export function isBlank(v: unknown): boolean {
  return v === null || v === undefined || (typeof v === 'string' && v.trim() === '');
}

/**
 * A scalar source value as text: strings as they are, numbers and bigints in decimal,
 * booleans as true/false, Dates as ISO instants, Buffers (binary text columns) as UTF-8.
 * Objects and arrays (JSON columns) are not text: undefined.
 */
export function scalarText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : undefined;
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v.toISOString();
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return undefined;
}

/** A short description of a value's type for reasons ("an object", "an array"). */
export function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'an invalid Date';
  if (typeof v === 'number') return `the number ${String(v)}`;
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * A value quoted for a reason: JSON-escaped, with every control or invisible character
 * written as \uXXXX so an operator can see it; at most 40 characters.
 */
export function shown(v: unknown): string {
  const t = scalarText(v) ?? typeName(v);
  const cps = Array.from(t.slice(0, 200));
  const json = JSON.stringify(cps.length > 40 ? `${cps.slice(0, 40).join('')}…` : cps.join(''));
  return json.replace(ID_UNSAFE_ALL, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

// C0 controls except \t and \n, DEL, C1 controls, and unpaired surrogates (which would
// make invalid UTF-8 on the wire).
// eslint-disable-next-line no-control-regex
const STRIP = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Free text as Feishu should get it: CR/CRLF → LF, control characters removed, trimmed. */
export function cleanText(v: string): string {
  return v.replace(/\r\n?/g, '\n').replace(STRIP, '').trim();
}

// Everything an identifier may not contain: all C0 controls (tab and newline too), DEL, C1
// controls, zero-width and direction marks, line and paragraph separators, a BOM, and
// unpaired surrogates. Invisible characters make two ids look equal that are not.
// eslint-disable-next-line no-control-regex
const ID_UNSAFE = /[\u0000-\u001F\u007F-\u009F\u200B-\u200F\u2028-\u202E\u2060-\u2064\uFEFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const ID_UNSAFE_ALL = new RegExp(ID_UNSAFE.source, 'g');

/** An identifier holding a control or invisible character: it is rejected, never cleaned. */
export function hasUnsafeIdChars(v: string): boolean {
  return ID_UNSAFE.test(v);
}

let segmenter: Intl.Segmenter | undefined;

/**
 * Cut text to at most `max` code points, ending in "…". The cut falls on a grapheme
 * boundary, so an emoji (even a ZWJ family or a flag) is never split into pieces.
 * Deterministic: the same input always gives the same output.
 */
export function truncateText(text: string, max: number): { text: string; truncated: boolean } {
  let count = 0;
  for (const _ of text) {
    if (count === max) return { text: cutAtGrapheme(text, max - 1), truncated: true };
    count++;
  }
  return { text, truncated: false };
}

function cutAtGrapheme(text: string, budget: number): string {
  // Only a window just past the budget needs segmenting, not the whole (maybe 1 MB) text.
  const window = Array.from(text.slice(0, (budget + 32) * 2)).slice(0, budget + 16).join('');
  segmenter ??= new Intl.Segmenter('und', { granularity: 'grapheme' });
  let out = '';
  let used = 0;
  for (const { segment } of segmenter.segment(window)) {
    const n = Array.from(segment).length;
    if (used + n > budget) break;
    out += segment;
    used += n;
  }
  return `${out.trimEnd()}…`;
}

/** Code points, not UTF-16 units. */
export function charLength(v: string): number {
  let n = 0;
  for (const _ of v) n++;
  return n;
}
