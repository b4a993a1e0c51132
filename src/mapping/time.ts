import { DateTime } from 'luxon';

/*
 * Source timestamps arrive in many shapes: zone-less strings (the usual legacy HR column,
 * read as the database's own text), strings with an offset, JS Dates (instants), or epoch
 * numbers. Zone-less values are wall time in the source zone (local, or UTC for systems that
 * store UTC); everything else is an instant. Feishu wants wall-clock strings in the
 * attendance group's zone, without offset (feishu-api.md §7.3).
 */

const ZONELESS = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?$/;
const WITH_OFFSET = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$/i;

export type TimeResult = { ok: true; value: DateTime } | { ok: false; problem: string };

/** Epoch numbers below this are seconds, above it milliseconds (1e11 s is the year 5138). */
const EPOCH_SECONDS_LIMIT = 1e11;

export function parseSourceTime(value: unknown, zone: string): TimeResult {
  if (value === null || value === undefined || value === '') return { ok: false, problem: 'is empty' };
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? { ok: false, problem: 'is an invalid date' } : { ok: true, value: DateTime.fromJSDate(value) };
  }
  if (typeof value === 'number' || (typeof value === 'bigint')) {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) return { ok: false, problem: `"${String(value)}" is not a timestamp` };
    return { ok: true, value: DateTime.fromMillis(n < EPOCH_SECONDS_LIMIT ? n * 1000 : n) };
  }
  if (typeof value !== 'string') return { ok: false, problem: `has an unsupported type (${typeof value})` };
  const text = value.trim();
  const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
  if (WITH_OFFSET.test(text)) {
    const iso = text.replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00').replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
    const dt = DateTime.fromISO(iso, { setZone: true });
    return dt.isValid ? { ok: true, value: dt } : { ok: false, problem: `"${shown}" is not a real time` };
  }
  const m = ZONELESS.exec(text);
  if (!m) return { ok: false, problem: `"${shown}" is not a timestamp (expected yyyy-MM-dd HH:mm:ss)` };
  const [year, month, day, hour = '0', minute = '0', second = '0', frac = ''] = m.slice(1);
  const fields = {
    year: Number(year),
    month: Number(month),
    day: Number(day),
    hour: Number(hour),
    minute: Number(minute),
    second: Number(second),
    millisecond: Number((frac + '000').slice(0, 3)),
  };
  const dt = DateTime.fromObject(fields, { zone });
  if (!dt.isValid) return { ok: false, problem: `"${shown}" is not a real date or time` };
  // luxon moves a wall time that falls into a DST gap forward; such a time never happened.
  if (dt.hour !== fields.hour || dt.minute !== fields.minute || dt.day !== fields.day) {
    return { ok: false, problem: `"${shown}" does not exist in ${zone} (daylight-saving gap)` };
  }
  // A wall time that occurs twice (the DST fall-back hour) is read as its first occurrence,
  // the one under the earlier (summer) offset, as java.time and Temporal's "compatible" do.
  // luxon alone picks the second; choosing explicitly keeps the instant (and the interval
  // computed from a span) the same whatever library version runs.
  return { ok: true, value: firstOccurrence(dt) };
}

function firstOccurrence(dt: DateTime): DateTime {
  const candidates = dt.getPossibleOffsets();
  return candidates.length > 1 ? candidates.reduce((a, b) => (b.toMillis() < a.toMillis() ? b : a)) : dt;
}

export function toWallClock(dt: DateTime, zone: string): string {
  return dt.setZone(zone).toFormat('yyyy-MM-dd HH:mm:ss');
}

export function toYmd(dt: DateTime, zone: string): string {
  return dt.setZone(zone).toFormat('yyyyMMdd');
}

export function toIsoDate(dt: DateTime, zone: string): string {
  return dt.setZone(zone).toFormat('yyyy-MM-dd');
}
