import type { Knex } from 'knex';
import type { AnyKindConfig } from '../config/schema.js';
import type { SourceRow } from '../mapping/map.js';
import { keyBinding } from './keyset.js';
import type { Cursor } from '../state/watermarks.js';
import { sourceRelation } from './relation.js';

/** Ids below the watermark an id cursor reads again by default (`cursor.lookback_ids`). */
export const DEFAULT_LOOKBACK_IDS = 100;

/** `cursor.lookback_ids` of an id-cursor kind (0: no lookback). */
export function lookbackIds(cfg: AnyKindConfig): number {
  const n = (cfg.cursor as { lookback_ids?: number }).lookback_ids;
  return n ?? DEFAULT_LOOKBACK_IDS;
}

/** The key a `sync.start_from` began an id kind after (stored as `after key K`), or null. */
export function idFloorKey(floor: string | null | undefined): string | null {
  const m = /^after key (.+)$/s.exec(floor ?? '');
  return m ? m[1]! : null;
}

/**
 * Where an id cursor's read starts when it looks back: after the key that lies
 * `lookback_ids` keys below the watermark, so the last `lookback_ids` keys up to the
 * watermark are read again.
 *
 * AUTO_INCREMENT (and sequence) ids are handed out when a row is inserted, not when its
 * transaction commits: under concurrency id 41 can commit after id 42 was read, and a
 * keyset on `id > 42` would never see it (only the next rescan would). Counting keys that
 * exist, not subtracting from the id, keeps the window the same size whatever the gaps and
 * works for text keys too. Re-read rows that did not change hash to the version already
 * planned and cost no operation. The window never reaches below a `sync.start_from` floor.
 * Null: the watermark itself (no lookback).
 */
export async function idLookbackStart(
  db: Knex,
  cfg: AnyKindConfig,
  watermark: Cursor,
  opts: { ids: number; floorKey?: string | null },
): Promise<Cursor | null> {
  if (watermark.key === null || opts.ids <= 0) return null;
  let q = sourceRelation(db, cfg).select(cfg.key).whereNotNull(cfg.key).where(cfg.key, '<=', keyBinding(watermark.key));
  if (opts.floorKey != null) q = q.where(cfg.key, '>', keyBinding(opts.floorKey));
  const below = (await q.orderBy(cfg.key, 'desc').offset(opts.ids).limit(1)) as SourceRow[];
  const key = below[0]?.[cfg.key];
  if (key !== undefined && key !== null) return { value: null, key: String(key) };
  // Fewer keys than the window: read them all, from the floor or the beginning.
  return opts.floorKey != null ? { value: null, key: opts.floorKey } : { value: null, key: null };
}
