import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import type { AnyKindConfig } from '../config/schema.js';
import { cursorColumn, sourceRelation } from './relation.js';
import { pageQuery } from './extract.js';
import type { Cursor } from '../state/watermarks.js';

/** `now`, a date (YYYY-MM-DD) or an ISO timestamp: the forms `sync.start_from` accepts. */
export function isStartFrom(value: string): boolean {
  return value === 'now' || DateTime.fromISO(value, { zone: 'UTC' }).isValid;
}

/**
 * The instant `sync.start_from` names: `now`, a date (its midnight in `zone`) or an ISO
 * timestamp (its offset honoured, else read in `zone`).
 */
export function startInstant(value: string, zone: string, now: DateTime = DateTime.now()): DateTime {
  if (value === 'now') return now.setZone(zone);
  return DateTime.fromISO(value, { zone }).setZone(zone);
}

/**
 * The instant written the way the source writes its cursor column, so the database compares
 * like with like: epoch seconds or milliseconds for a numeric column, ISO with `T` and an
 * offset when its values have them, else zone-less wall time in the kind's zone.
 */
export function boundText(instant: DateTime, sample: string | null): string {
  const s = (sample ?? '').trim();
  if (/^\d+(\.\d+)?$/.test(s)) return String(Number(s) > 1e11 ? instant.toMillis() : Math.floor(instant.toSeconds()));
  const withT = /^\d{4}-\d{2}-\d{2}T/.test(s);
  const withOffset = /\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$/i.test(s);
  const wall = instant.toFormat(withT ? "yyyy-MM-dd'T'HH:mm:ss" : 'yyyy-MM-dd HH:mm:ss');
  return withOffset ? `${wall}${instant.toFormat('ZZ')}` : wall;
}

/**
 * Where the first cycle of a kind starts when `sync.start_from` is set and there is no
 * watermark yet. Timestamp cursors: a bound without a key, read inclusively (rows changed
 * at or after the instant). Id cursors have no change time: the first cycle starts after the
 * highest key present now. Null: start at the beginning (an empty id table).
 */
export async function startPosition(db: Knex, cfg: AnyKindConfig, startFrom: string, zone: string, now?: DateTime): Promise<Cursor | null> {
  const col = cursorColumn(cfg);
  const max = (await sourceRelation(db, cfg).max({ m: col }).first()) as { m: unknown } | undefined;
  const sample = max?.m === null || max?.m === undefined ? null : max.m instanceof Date ? max.m.toISOString() : String(max.m);
  if (cfg.cursor.mode === 'id') return sample === null ? null : { value: null, key: sample };
  return { value: boundText(startInstant(startFrom, zone, now), sample), key: null };
}

/** How many rows a read from `position` would return (the next cycle's rows, before lookback). */
export async function countFrom(db: Knex, cfg: AnyKindConfig, position: Cursor | null): Promise<number> {
  const q = pageQuery(db, cfg, position, { pageSize: 1 }).clearSelect().clearOrder().clear('limit').count({ n: '*' });
  const row = (await q.first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}
