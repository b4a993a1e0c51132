import type { DateTime } from 'luxon';
import type { Kind } from '../kinds.js';
import { KIND_ARRAY } from '../kinds.js';
import type {
  AnyKindConfig,
  FieldSpec,
  LeaveKindConfig,
  OvertimeKindConfig,
  TripKindConfig,
  TypeMapping,
} from '../config/schema.js';
import { validateUserApproval, type UserApproval } from '../feishu/schema.js';
import { versionHash } from '../identity.js';
import { MAPPING_LIMITS } from './limits.js';
import { isBlank, scalarText, shown } from './text.js';
import { toIsoDate, toWallClock, toYmd } from './time.js';
import { MAX_KEY, MAX_REGION_ID, MAX_USER_ID, RowReader, splitList } from './reader.js';
import { ROW_PROBLEMS, type MapContext, type MappedRow, type SourceRow } from './types.js';

export { ROW_PROBLEMS, type MapContext, type MappedRow, type SourceRow } from './types.js';

function sourceKeyOf(cfg: AnyKindConfig, row: SourceRow): string | null {
  const v = row[cfg.key] ?? Object.entries(row).find(([k]) => k.toLowerCase() === cfg.key.toLowerCase())?.[1];
  const text = isBlank(v) ? undefined : scalarText(v)?.trim();
  return text === undefined || text === '' ? null : text;
}

function inMatchList(value: unknown, list: ReadonlyArray<string | number | boolean>): boolean {
  const text = isBlank(value) ? '' : (scalarText(value)?.trim() ?? '');
  return list.some((x) => String(x) === text);
}

/** Cancelled, rejected, not yet approved or soft-deleted rows must not be (or stay) in Feishu. */
export function inactiveReason(cfg: AnyKindConfig, row: SourceRow): 'cancelled' | 'not_approved' | 'deleted' | null {
  if (cfg.deleted) {
    const v = row[cfg.deleted.column];
    const deleted = cfg.deleted.values ? inMatchList(v, cfg.deleted.values) : !isBlank(v);
    if (deleted) return 'deleted';
  }
  if (cfg.status) {
    const v = row[cfg.status.column];
    if (inMatchList(v, cfg.status.approved)) return null;
    return cfg.status.revoked && inMatchList(v, cfg.status.revoked) ? 'cancelled' : 'not_approved';
  }
  return null;
}

function spanChecks(r: RowReader, start: DateTime | undefined, end: DateTime | undefined, ctx: MapContext): void {
  if (!start || !end) return;
  const maxDays = ctx.maxSpanDays ?? MAPPING_LIMITS.defaultMaxSpanDays;
  const zone = ctx.feishuTimeZone;
  if (end < start) r.reasons.push('end_time is before start_time');
  else if (end.equals(start)) r.reasons.push('end_time equals start_time (a zero-length record)');
  else if (end.diff(start, 'days').days > maxDays) r.reasons.push(`the span is longer than ${maxDays} days`);
  // Feishu compares wall-clock strings: a short span across the fall-back hour can end
  // "before" it starts there although it does not in real time.
  else if (toWallClock(end, zone) < toWallClock(start, zone)) {
    r.reasons.push(`end_time (${toWallClock(end, zone)}) is before start_time (${toWallClock(start, zone)}) on the ${zone} wall clock Feishu uses: the span crosses a daylight-saving change`);
  }
}

function buildLeaveLike(kind: 'leave' | 'out', cfg: LeaveKindConfig, r: RowReader, ctx: MapContext) {
  const f = cfg.fields;
  const userId = r.id('user_id', f.user_id, true, MAX_USER_ID);
  const start = r.time('start_time', f.start_time, true);
  const end = r.time('end_time', f.end_time, true);
  const code = r.value('type', f.type, true);
  let type = undefined as TypeMapping | undefined;
  if (code !== undefined) {
    const c = scalarText(code)?.trim();
    // The type table: `types`, merged over the rows of `types_query` when the kind has one.
    const types = cfg.types ?? {};
    // Own keys only: a code such as "constructor" must not find Object.prototype's members.
    if (c !== undefined && Object.hasOwn(types, c)) type = types[c];
    else r.reasons.push(`fields.type: unknown type code ${shown(c ?? code)} (not in kinds.${kind}.types${cfg.types_query ? ' or the rows of its types_query' : ''})`);
  }
  const unit = r.int('unit', f.unit, true, [1, 2, 3, 4]);
  const reason = r.text('reason', f.reason, true);
  spanChecks(r, start, end, ctx);
  let interval: number | undefined;
  if (f.interval) interval = r.seconds('interval', f.interval);
  else if (start && end && end >= start) interval = Math.round(end.diff(start, 'seconds').seconds);
  if (!userId || !start || !end || !type || unit === undefined || !reason || interval === undefined) return null;
  const names = Object.fromEntries(Object.entries(type.names).filter(([, v]) => v !== undefined));
  return {
    userId,
    start,
    item: {
      uniq_id: type.uniq_id,
      unit: unit as 1 | 2 | 3 | 4,
      interval,
      start_time: toWallClock(start, ctx.feishuTimeZone),
      end_time: toWallClock(end, ctx.feishuTimeZone),
      i18n_names: names,
      default_locale: type.default_locale,
      reason,
    },
  };
}

function buildOvertime(cfg: OvertimeKindConfig, r: RowReader, ctx: MapContext) {
  const f = cfg.fields;
  const userId = r.id('user_id', f.user_id, true, MAX_USER_ID);
  const start = r.time('start_time', f.start_time, true);
  const end = r.time('end_time', f.end_time, true);
  const unit = r.int('unit', f.unit, true, [1, 2, 3, 4]);
  const category = r.int('category', f.category, true, [1, 2, 3]);
  const type = r.int('type', f.type, true, [0, 1, 2]);
  const reason = r.text('reason', f.reason, false);
  spanChecks(r, start, end, ctx);
  let seconds: number | undefined;
  if (f.duration) seconds = r.seconds('duration', f.duration);
  else if (start && end && end >= start) seconds = end.diff(start, 'seconds').seconds;
  if (!userId || !start || !end || unit === undefined || category === undefined || type === undefined || seconds === undefined) return null;
  const hoursPerDay = f.duration?.hours_per_day ?? 8;
  const perUnit: Record<number, number> = { 1: hoursPerDay * 3600, 2: 3600, 3: hoursPerDay * 1800, 4: 1800 };
  const duration = Math.round((seconds / perUnit[unit]!) * 100) / 100;
  return {
    userId,
    start,
    item: {
      duration,
      unit: unit as 1 | 2 | 3 | 4,
      category: category as 1 | 2 | 3,
      type: type as 0 | 1 | 2,
      start_time: toWallClock(start, ctx.feishuTimeZone),
      end_time: toWallClock(end, ctx.feishuTimeZone),
      ...(reason ? { reason } : {}),
    },
  };
}

function buildTrip(cfg: TripKindConfig, r: RowReader, ctx: MapContext) {
  const f = cfg.fields;
  const userId = r.id('user_id', f.user_id, true, MAX_USER_ID);
  const start = r.time('start_time', f.start_time, true);
  const end = r.time('end_time', f.end_time, true);
  const reason = r.text('reason', f.reason, true);
  const passed = r.time('approve_pass_time', f.approve_pass_time, true);
  const applied = r.time('approve_apply_time', f.approve_apply_time, true);
  spanChecks(r, start, end, ctx);
  const levels = ['l1', 'l2', 'l3', 'l4'];
  const level = (name: string, spec: FieldSpec | undefined) => {
    const v = r.id(name, spec, false, MAX_REGION_ID);
    if (v !== undefined && !levels.includes(v)) {
      r.reasons.push(`fields.${name}: ${shown(v)} is not one of ${levels.join(', ')}`);
      return undefined;
    }
    return v as 'l1' | 'l2' | 'l3' | 'l4' | undefined;
  };
  const depLevel = level('departure_region_level', f.departure_region_level);
  const depId = r.id('departure_region_id', f.departure_region_id, false, MAX_REGION_ID);
  const destLevel = level('destination_region_level', f.destination_region_level);
  const destIds = f.destination_region_ids ? r.idList('destination_region_ids', f.destination_region_ids, MAX_REGION_ID) : undefined;
  let transportation: number[] | undefined;
  if (f.transportation) {
    const spec = typeof f.transportation === 'string' ? { column: f.transportation } : f.transportation;
    const raw = spec.column !== undefined ? r.value('transportation', { column: spec.column, ...(spec.default !== undefined ? { default: spec.default } : {}) }, false) : spec.value;
    if (raw !== undefined) {
      transportation = [];
      for (const part of splitList(raw)) {
        const mapped = spec.map ? (Object.hasOwn(spec.map, part) ? spec.map[part] : undefined) : part;
        const n = Number(mapped);
        if (mapped === undefined || !Number.isInteger(n) || n < 1 || n > 6) {
          r.reasons.push(`fields.transportation: unknown value ${shown(part)} (expected 1–6${spec.map ? ' or a key of its map' : ''})`);
        } else if (!transportation.includes(n)) transportation.push(n);
      }
    }
  }
  const tripType = r.int('trip_type', f.trip_type, false, [1, 2]);
  const remarks = r.text('remarks', f.remarks, false);
  if (!userId || !start || !end || !reason || !passed || !applied) return null;
  const item: Record<string, unknown> = {
    start_time: toWallClock(start, ctx.feishuTimeZone),
    end_time: toWallClock(end, ctx.feishuTimeZone),
    reason,
    approve_pass_time: toWallClock(passed, ctx.feishuTimeZone),
    approve_apply_time: toWallClock(applied, ctx.feishuTimeZone),
  };
  if (depLevel || depId) item.departure = { ...(depLevel ? { region_level: depLevel } : {}), ...(depId ? { region_id: depId } : {}) };
  if (destIds !== undefined) {
    item.destinations = destIds.map((id) => ({ ...(destLevel ? { region_level: destLevel } : {}), region_id: id }));
  }
  if (transportation && transportation.length > 0) item.transportation = transportation;
  if (tripType !== undefined) item.trip_type = tripType;
  if (remarks) item.remarks = remarks;
  return { userId, start, item };
}

/**
 * Map one source row to what Feishu should hold for it. Never throws on bad data: a row that
 * cannot be mapped comes back `invalid` with every reason, each naming the field (and the
 * column) it concerns.
 *
 * The `date` of the request is the start date in the attendance zone (feishu-api.md §7.1);
 * one item per source record, never split by day.
 */
export function mapRow(kind: Kind, cfg: AnyKindConfig, row: SourceRow, ctx: MapContext): MappedRow {
  let sourceKey: string | null = null;
  try {
    sourceKey = sourceKeyOf(cfg, row);
    if (sourceKey === null) return { outcome: 'invalid', kind, sourceKey: null, reasons: [`key (column ${cfg.key}): is empty`] };
    if (sourceKey.length > MAX_KEY) return { outcome: 'invalid', kind, sourceKey: sourceKey.slice(0, MAX_KEY), reasons: [`key (column ${cfg.key}): longer than ${MAX_KEY} characters`] };
    const problems = (row as { [ROW_PROBLEMS]?: string[] })[ROW_PROBLEMS];
    if (problems) return { outcome: 'invalid', kind, sourceKey, reasons: [...problems] };
    const inactive = inactiveReason(cfg, row);
    if (inactive) return { outcome: 'inactive', kind, sourceKey, reason: inactive };

    const r = new RowReader(row, ctx);
    const built =
      kind === 'leave' || kind === 'out'
        ? buildLeaveLike(kind, cfg as LeaveKindConfig, r, ctx)
        : kind === 'overtime'
          ? buildOvertime(cfg as OvertimeKindConfig, r, ctx)
          : buildTrip(cfg as TripKindConfig, r, ctx);
    if (!built || r.reasons.length > 0) {
      return { outcome: 'invalid', kind, sourceKey, reasons: r.reasons.length > 0 ? r.reasons : ['the row could not be mapped'] };
    }
    const request = { user_id: built.userId, date: toYmd(built.start, ctx.feishuTimeZone), [KIND_ARRAY[kind]]: [built.item] } as UserApproval;
    // The same schema Feishu's emulator enforces, in its strict reading.
    const check = validateUserApproval(request, { strict: true });
    if (!check.ok) {
      return { outcome: 'invalid', kind, sourceKey, reasons: check.violations.map((v) => `feishu ${v.field}: ${v.description}`) };
    }
    return {
      outcome: 'valid',
      kind,
      sourceKey,
      request: withAllLocales(request),
      // Over the names as configured: the filled-in ones follow from them, and records synced
      // before the fill keep their versions (no revoke and re-create of every leave).
      version: versionHash(request),
      userId: built.userId,
      effectiveDate: toIsoDate(built.start, ctx.feishuTimeZone),
      ...(r.warnings.length > 0 ? { warnings: r.warnings } : {}),
    };
  } catch (err) {
    // A mapper bug must not stop the stream either: the row is recorded, not lost.
    return { outcome: 'invalid', kind, sourceKey, reasons: [`unexpected mapping error: ${(err as Error).message}`] };
  }
}

/**
 * The old Lark page requires i18n_names ch, en and ja, the current one none: a locale without
 * a name of its own gets the default locale's, which satisfies both readings.
 */
function withAllLocales(request: UserApproval): UserApproval {
  const fill = <T extends { i18n_names: { ch?: string | undefined; en?: string | undefined; ja?: string | undefined }; default_locale: 'ch' | 'en' | 'ja' }>(item: T): T => {
    const n = item.i18n_names;
    const fallback = n[item.default_locale];
    if (!fallback) return item;
    return { ...item, i18n_names: { ...n, ch: n.ch || fallback, en: n.en || fallback, ja: n.ja || fallback } };
  };
  return {
    ...request,
    ...(request.leaves ? { leaves: request.leaves.map(fill) } : {}),
    ...(request.outs ? { outs: request.outs.map(fill) } : {}),
  } as UserApproval;
}

export function mapContextFor(cfg: AnyKindConfig, global: { sourceTimeZone: string; feishuTimeZone: string }): MapContext {
  return { sourceTimeZone: cfg.time_zone ?? global.sourceTimeZone, feishuTimeZone: global.feishuTimeZone };
}
