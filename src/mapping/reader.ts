import type { DateTime } from 'luxon';
import type { DurationSpec, FieldSpec } from '../config/schema.js';
import { MAPPING_LIMITS } from './limits.js';
import { charLength, cleanText, hasUnsafeIdChars, isBlank, scalarText, shown, truncateText, typeName } from './text.js';
import { parseSourceTime } from './time.js';
import type { MapContext, SourceRow } from './types.js';

/*
 * Reading the fields of one source row (ids, times, numbers, durations, text), each problem
 * collected as a reason naming the field and its column.
 */

/** Text limit: a reason or remark longer than this is cut (deterministically) with an ellipsis. */
export const MAX_TEXT = MAPPING_LIMITS.maxTextChars;
export const MAX_USER_ID = MAPPING_LIMITS.maxUserIdChars;
export const MAX_KEY = MAPPING_LIMITS.maxSourceKeyChars;
export const MAX_REGION_ID = MAPPING_LIMITS.maxRegionIdChars;
export const DAY_MS = 86_400_000;

/** NULL, empty, or nothing but spaces and control characters: a default applies. */
export function isEmpty(v: unknown): boolean {
  return isBlank(v) || (typeof v === 'string' && cleanText(v) === '');
}

/** A decimal number as text ("8", "-2.50", ".5"); hex, exponents, "Infinity" are not. */
export const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/;

export function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && DECIMAL.test(v.trim())) return Number(v.trim());
  return undefined;
}

/** Reads fields of one row, collecting every problem instead of stopping at the first. */
export class RowReader {
  readonly reasons: string[] = [];
  readonly warnings: string[] = [];

  constructor(
    private readonly row: SourceRow,
    private readonly ctx: MapContext,
  ) {}

  private label(name: string, spec: FieldSpec | DurationSpec | undefined): string {
    const column = typeof spec === 'string' ? spec : spec?.column;
    return column ? `fields.${name} (column ${column})` : `fields.${name}`;
  }

  private column(column: string): unknown {
    if (Object.prototype.hasOwnProperty.call(this.row, column)) return this.row[column];
    // Some drivers fold the case of unquoted names.
    const hit = Object.keys(this.row).find((k) => k.toLowerCase() === column.toLowerCase());
    return hit === undefined ? undefined : this.row[hit];
  }

  /** The raw value of a field after default and map; undefined when absent and optional. */
  value(name: string, spec: FieldSpec | undefined, required: boolean): unknown {
    if (spec === undefined) return undefined;
    const s = typeof spec === 'string' ? { column: spec } : spec;
    let v: unknown = s.column !== undefined ? this.column(s.column) : s.value;
    if (isEmpty(v) && s.default !== undefined) v = s.default;
    if (isEmpty(v)) {
      if (required) this.reasons.push(`${this.label(name, spec)}: is empty`);
      return undefined;
    }
    if (s.map) {
      const key = scalarText(v)?.trim();
      if (key === undefined || !Object.hasOwn(s.map, key)) {
        this.reasons.push(`${this.label(name, spec)}: unknown value ${shown(key ?? v)} (not in its map)`);
        return undefined;
      }
      v = s.map[key];
    }
    return v;
  }

  /**
   * Free text (reason, remarks): control characters removed, cut to MAX_TEXT code points on
   * a grapheme boundary. A cut is recorded as a warning, not as a problem.
   */
  text(name: string, spec: FieldSpec | undefined, required: boolean): string | undefined {
    const v = this.value(name, spec, required);
    if (v === undefined) return undefined;
    const raw = scalarText(v);
    if (raw === undefined) {
      this.reasons.push(`${this.label(name, spec)}: is ${typeName(v)}, not text`);
      return undefined;
    }
    const cut = truncateText(cleanText(raw), MAX_TEXT);
    if (cut.truncated) this.warnings.push(`${this.label(name, spec)}: cut from ${charLength(raw)} to ${MAX_TEXT} characters`);
    return cut.text;
  }

  /**
   * An identifier (user id, region id): trimmed, otherwise never altered, because a changed
   * identifier could name someone else. Control or invisible characters, or more than `max`
   * characters, make it invalid.
   */
  id(name: string, spec: FieldSpec | undefined, required: boolean, max: number): string | undefined {
    const v = this.value(name, spec, required);
    if (v === undefined) return undefined;
    return this.checkId(this.label(name, spec), v, max);
  }

  /** A list of identifiers in one value, split on commas, semicolons, bars or spaces. */
  idList(name: string, spec: FieldSpec, max: number): string[] | undefined {
    const v = this.value(name, spec, false);
    if (v === undefined) return undefined;
    const ids = splitList(v).map((id) => this.checkId(this.label(name, spec), id, max));
    return ids.every((id) => id !== undefined) ? (ids as string[]) : undefined;
  }

  private checkId(label: string, v: unknown, max: number): string | undefined {
    const raw = scalarText(v);
    if (raw === undefined) {
      this.reasons.push(`${label}: is ${typeName(v)}, not an identifier`);
      return undefined;
    }
    const t = raw.trim();
    if (hasUnsafeIdChars(t)) {
      this.reasons.push(`${label}: ${shown(t)} contains a control or invisible character`);
      return undefined;
    }
    if (charLength(t) > max) {
      this.reasons.push(`${label}: longer than ${max} characters`);
      return undefined;
    }
    return t;
  }

  int(name: string, spec: FieldSpec | undefined, required: boolean, allowed: readonly number[]): number | undefined {
    const v = this.value(name, spec, required);
    if (v === undefined) return undefined;
    const n = toNumber(v);
    if (n === undefined || !Number.isInteger(n) || !allowed.includes(n)) {
      this.reasons.push(`${this.label(name, spec)}: ${shown(v)} is not one of ${allowed.join(', ')}`);
      return undefined;
    }
    return n;
  }

  time(name: string, spec: FieldSpec | undefined, required: boolean): DateTime | undefined {
    const v = this.value(name, spec, required);
    if (v === undefined) return undefined;
    const r = parseSourceTime(v, this.ctx.sourceTimeZone);
    if (!r.ok) {
      this.reasons.push(`${this.label(name, spec)}: ${r.problem}`);
      return undefined;
    }
    // A placeholder (1900-01-01, epoch 0, a yyyyMMdd number read as seconds) or a mistyped
    // year is a data error, never attendance.
    const ms = r.value.toMillis();
    const now = this.ctx.now ?? Date.now();
    if (ms < MAPPING_LIMITS.earliestTime) {
      this.reasons.push(`${this.label(name, spec)}: ${shown(v)} is before 2000-01-01 (not a plausible attendance time)`);
      return undefined;
    }
    if (ms > now + MAPPING_LIMITS.maxDaysAhead * DAY_MS) {
      this.reasons.push(`${this.label(name, spec)}: ${shown(v)} is more than ${MAPPING_LIMITS.maxDaysAhead} days in the future`);
      return undefined;
    }
    return r.value;
  }

  /** A duration in seconds from a DurationSpec. */
  seconds(name: string, spec: DurationSpec): number | undefined {
    const raw = spec.column !== undefined ? this.column(spec.column) : spec.value;
    if (isEmpty(raw)) {
      this.reasons.push(`${this.label(name, spec)}: is empty`);
      return undefined;
    }
    const n = toNumber(raw);
    if (n === undefined || n < 0) {
      this.reasons.push(`${this.label(name, spec)}: ${shown(raw)} is not a non-negative number`);
      return undefined;
    }
    const perUnit: Record<DurationSpec['unit'], number> = {
      seconds: 1,
      minutes: 60,
      hours: 3600,
      days: spec.hours_per_day * 3600,
      half_days: spec.hours_per_day * 1800,
    };
    const seconds = Math.round(n * perUnit[spec.unit]);
    const maxDays = this.ctx.maxSpanDays ?? MAPPING_LIMITS.defaultMaxSpanDays;
    if (seconds > maxDays * DAY_MS / 1000) {
      this.reasons.push(`${this.label(name, spec)}: ${shown(raw)} is longer than ${maxDays} days`);
      return undefined;
    }
    return seconds;
  }
}

export function splitList(v: unknown): string[] {
  return (scalarText(v) ?? '')
    .split(/[,，;；|\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}
