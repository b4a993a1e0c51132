import { DateTime } from 'luxon';

/**
 * Date windows for looking a record up through the query endpoint (feishu-api.md §5.1):
 * `check_date_from` / `check_date_to` are yyyyMMdd numbers, at most 30 days apart, and
 * `check_date_from` may not be later than today + 1. Every window here also keeps
 * `check_date_to` within the cap, in case Feishu applies it there.
 */
export interface DateWindow {
  type: 'PeriodTime' | 'CreateTime';
  from: number;
  to: number;
}

/**
 * Days a query window covers, both ends counted (to − from = 28). "No more than 30 days" may
 * be counted as a difference (≤ 30) or with both ends as days (≤ 29 apart); a peer even saw a
 * sibling API refuse 29-day chunks. 29 days stays inside every reading.
 */
export const WINDOW_DAYS = 29;
/** The span of a window, check_date_to − check_date_from, in days. */
const WINDOW_SPAN = WINDOW_DAYS - 1;
/** Most user_ids in one query: undocumented for this endpoint; every sibling caps at 50. */
export const MAX_QUERY_USERS = 50;
/**
 * A CreateTime search that only backs up a period window goes back at most this many 29-day
 * slices; one that is the only way to see the record goes back to `createdFrom`.
 */
const MAX_CREATE_SLICES = 3;
/** The mapper refuses times more than three years ahead: a record beyond the cap was created within that. */
const MAX_CREATE_LOOKBACK_DAYS = 3 * 366 + 31;

export function ymd(dt: DateTime): number {
  return Number(dt.toFormat('yyyyMMdd'));
}

function parseYmd(value: string | number): DateTime | undefined {
  const s = String(value);
  const dt = /^\d{8}$/.test(s) ? DateTime.fromFormat(s, 'yyyyMMdd', { zone: 'UTC' }) : undefined;
  return dt?.isValid ? dt : undefined;
}

/** The date part of a Feishu wall-clock string `yyyy-MM-dd HH:mm:ss`. */
function wallClockDate(value: string | undefined): DateTime | undefined {
  if (!value) return undefined;
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(value);
  return m ? parseYmd(`${m[1]}${m[2]}${m[3]}`) : undefined;
}

/**
 * Today + 1 as the server may see it. Which zone Feishu uses for "today" is not documented;
 * taking the earlier of UTC and the attendance zone keeps us inside the cap in either case.
 */
export function latestQueryableDate(nowMs: number, timeZone: string): DateTime {
  const inZone = DateTime.fromMillis(nowMs, { zone: timeZone });
  const inUtc = DateTime.fromMillis(nowMs, { zone: 'UTC' });
  const zoneDay = DateTime.fromObject({ year: inZone.year, month: inZone.month, day: inZone.day }, { zone: 'UTC' });
  const utcDay = DateTime.fromObject({ year: inUtc.year, month: inUtc.month, day: inUtc.day }, { zone: 'UTC' });
  return (zoneDay < utcDay ? zoneDay : utcDay).plus({ days: 1 });
}

export interface WindowArgs {
  /** `date` of the user_approval (yyyyMMdd). */
  date: string;
  startTime?: string | undefined;
  endTime?: string | undefined;
  /**
   * When the record may have been created at the earliest (epoch ms): the first attempt of
   * the create, which may lie days back (a retry after an outage, a resend).
   */
  createdFrom?: number | undefined;
  nowMs: number;
  timeZone: string;
  /** Also search by creation date even when a period window is possible. */
  includeCreateTime: boolean;
}

/**
 * PeriodTime: the record's `date` and its start and end dates, one day wider on each side
 * (the server's zone is the attendance group's, ours may differ), clamped to the cap and to
 * 29 days (a longer record still overlaps its first 29 days).
 * CreateTime: from the day before `createdFrom` to the cap, in 29-day slices. Needed when the
 * record lies beyond today + 1, where PeriodTime cannot reach: then it goes all the way back to
 * `createdFrom`, since nothing else can find the record.
 */
export function lookupWindows(args: WindowArgs): DateWindow[] {
  const cap = latestQueryableDate(args.nowMs, args.timeZone);
  const windows: DateWindow[] = [];
  const dates = [parseYmd(args.date), wallClockDate(args.startTime), wallClockDate(args.endTime)].filter((d): d is DateTime => d !== undefined);
  let beyondCap = dates.length === 0;
  if (dates.length > 0) {
    const earliestDate = DateTime.min(...dates)!;
    const latestDate = DateTime.max(...dates)!;
    // Part of the record lies beyond the cap: PeriodTime may not see it there, so add CreateTime.
    beyondCap = latestDate > cap;
    if (earliestDate <= cap) {
      const first = earliestDate.minus({ days: 1 });
      const last = latestDate.plus({ days: 1 });
      let to = last < cap ? last : cap;
      const limit = first.plus({ days: WINDOW_SPAN });
      if (to > limit) to = limit;
      windows.push({ type: 'PeriodTime', from: ymd(first), to: ymd(to) });
    }
  }
  if (beyondCap || args.includeCreateTime) {
    const createdFrom = DateTime.fromMillis(args.createdFrom ?? args.nowMs - 29 * 86_400_000, { zone: args.timeZone });
    let from: DateTime = DateTime.fromObject({ year: createdFrom.year, month: createdFrom.month, day: createdFrom.day }, { zone: 'UTC' }).minus({ days: 1 });
    const earliest = cap.minus({ days: beyondCap ? MAX_CREATE_LOOKBACK_DAYS : MAX_CREATE_SLICES * WINDOW_DAYS - 1 });
    if (from < earliest) from = earliest;
    // Newest slice first: a record created moments ago is found with one query.
    const slices: DateWindow[] = [];
    while (from <= cap) {
      const end = from.plus({ days: WINDOW_SPAN });
      slices.push({ type: 'CreateTime', from: ymd(from), to: ymd(end < cap ? end : cap) });
      from = end.plus({ days: 1 });
    }
    windows.push(...slices.reverse());
  }
  return windows;
}

/** Split user ids into query-sized groups (at most MAX_QUERY_USERS each), without repeats. */
export function chunkUserIds(userIds: readonly string[], size = MAX_QUERY_USERS): string[][] {
  const unique = [...new Set(userIds)];
  const out: string[][] = [];
  for (let i = 0; i < unique.length; i += size) out.push(unique.slice(i, i + size));
  return out;
}

/** Consecutive windows of WINDOW_DAYS covering [from, to] (yyyyMMdd), clamped to today + 1. */
export function dateWindows(from: number, to: number, nowMs: number, timeZone: string, type: DateWindow['type'] = 'PeriodTime'): DateWindow[] {
  const start = parseYmd(from);
  const endRaw = parseYmd(to);
  if (!start || !endRaw) throw new RangeError(`dateWindows: ${from}..${to} are not yyyyMMdd dates`);
  const cap = latestQueryableDate(nowMs, timeZone);
  const end = endRaw < cap ? endRaw : cap;
  const out: DateWindow[] = [];
  for (let f = start; f <= end; f = f.plus({ days: WINDOW_DAYS })) {
    const t = f.plus({ days: WINDOW_SPAN });
    out.push({ type, from: ymd(f), to: ymd(t < end ? t : end) });
  }
  return out;
}
