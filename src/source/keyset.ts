import { DateTime } from 'luxon';
import type { SourceRow } from '../mapping/map.js';
import type { Cursor } from '../state/watermarks.js';

/*
 * Keyset positions: how cursor values and keys compare, bind and move back by the lookback.
 */

/**
 * A cursor value as epoch ms: zone-less text in `zone`, text with an offset as written, a
 * Date as is. Null for numbers (epochs and version counters are not told apart) and for text
 * that is not a time.
 */
export function cursorTimeMs(value: unknown, zone: string): number | null {
  if (value instanceof Date) return value.getTime();
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'bigint') return null;
  const text = String(value).trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return null;
  let dt = DateTime.fromSQL(text, { zone });
  if (!dt.isValid) dt = DateTime.fromISO(text, { zone });
  return dt.isValid ? dt.toMillis() : null;
}

/**
 * Keys that are whole numbers are bound as numbers so `9 < 10` holds (text would say
 * otherwise). Digits with a leading zero (`'002'`) are text keys and stay text: as numbers
 * they would compare as 2 against a text column and skip rows.
 */
export function keyBinding(key: string): string | number {
  if (/^-?(0|[1-9]\d{0,14})$/.test(key)) return Number(key);
  return key;
}

export function asCursorText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  return String(v);
}

function compareKeys(a: string, b: string): number {
  const na = keyBinding(a);
  const nb = keyBinding(b);
  if (typeof na === 'number' && typeof nb === 'number') return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Order of two positions, the way the keyset query orders rows. */
export function compareCursors(a: Cursor, b: Cursor): number {
  if ((a.value ?? '') !== (b.value ?? '')) {
    const na = Number(a.value);
    const nb = Number(b.value);
    if (a.value !== null && b.value !== null && Number.isFinite(na) && Number.isFinite(nb) && /^\d+$/.test(a.value) && /^\d+$/.test(b.value)) return na - nb;
    return (a.value ?? '') < (b.value ?? '') ? -1 : 1;
  }
  return compareKeys(a.key ?? '', b.key ?? '');
}

/**
 * A full page may end inside a group of rows that share one key (a join that multiplies a
 * record). The keyset would skip the rest of the group on the next page, so the group is
 * completed here: the planner then sees every copy together and can refuse the key.
 */
export async function completeLastKey(rows: SourceRow[], key: string, fetchGroup: (k: string | number) => Promise<SourceRow[]>): Promise<SourceRow[]> {
  const last = rows[rows.length - 1];
  if (!last) return rows;
  const k = asCursorText(last[key]);
  if (k === null) return rows;
  let cut = rows.length;
  while (cut > 0 && asCursorText(rows[cut - 1]![key]) === k) cut--;
  const group = await fetchGroup(keyBinding(k));
  return group.length > rows.length - cut ? [...rows.slice(0, cut), ...group] : rows;
}

/**
 * The lower bound of the lookback window: `lookbackSeconds` before the watermark, written
 * in the same notation as the stored value so the database compares like with like. A
 * transaction that commits late can carry an updated_at older than the watermark; the
 * re-read is harmless because unchanged rows hash to the version already planned.
 */
export function lookbackBound(watermarkValue: string, lookbackSeconds: number): string | null {
  if (lookbackSeconds <= 0) return null;
  const text = watermarkValue.trim();
  const hasOffset = /(Z|[+-]\d{2}(:?\d{2})?)$/i.test(text) && /\d{2}:\d{2}/.test(text);
  const dt = hasOffset
    ? DateTime.fromISO(text.replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00'), { setZone: true })
    : DateTime.fromSQL(text, { zone: 'UTC' });
  if (!dt.isValid) {
    // A numeric cursor column (epoch or version counter): subtract as a number.
    const n = Number(text);
    return Number.isFinite(n) ? String(n - lookbackSeconds * (n > 1e11 ? 1000 : 1)) : null;
  }
  const back = dt.minus({ seconds: lookbackSeconds });
  return hasOffset ? back.toISO({ suppressMilliseconds: false }) : back.toFormat('yyyy-MM-dd HH:mm:ss.SSS');
}

/** A cursor value as a number to compare: epoch figures as they are, timestamps in ms (zone-less ones as UTC, alike). */
export function instantOf(text: string): number {
  const t = text.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  let dt = DateTime.fromSQL(t, { zone: 'UTC', setZone: true });
  if (!dt.isValid) dt = DateTime.fromISO(t.replace(' ', 'T'), { zone: 'UTC', setZone: true });
  return dt.isValid ? dt.toMillis() : Number.NaN;
}
