import type { Knex } from 'knex';
import type { Kind } from '../kinds.js';
import type { StateTables } from './tables.js';
import { toMillis } from './values.js';

/**
 * A keyset position: the cursor column's value as the source database's own string (a
 * timestamp keeps its microseconds; a JS Date would cut them and re-read or skip rows at the
 * boundary), and the key as the tie-breaker. In id mode only `key` is used; a value without
 * a key is a start bound (sync.start_from), read from inclusively.
 *
 * The one shape of the watermark from the source read to the state table and back.
 */
export interface Cursor {
  readonly value: string | null;
  readonly key: string | null;
}

/** The stored watermark of a kind: its cursor (null before the first row) and when it moved. */
export interface Watermark {
  readonly kind: Kind;
  readonly cursor: Cursor | null;
  readonly lastRescanAt: number | null;
  readonly updatedAt: number;
}

interface WatermarkRow {
  kind: Kind;
  cursor_value: string | null;
  cursor_key: string | null;
  last_rescan_at: number | string | null;
  updated_at: number | string;
}

function fromRow(r: WatermarkRow): Watermark {
  return {
    kind: r.kind,
    cursor: r.cursor_value !== null || r.cursor_key !== null ? { value: r.cursor_value, key: r.cursor_key } : null,
    lastRescanAt: toMillis(r.last_rescan_at),
    updatedAt: toMillis(r.updated_at) ?? 0,
  };
}

export async function getWatermark(db: Knex, t: StateTables, kind: Kind): Promise<Watermark | null> {
  const row = (await db(t.watermarks).where({ kind }).first()) as WatermarkRow | undefined;
  return row ? fromRow(row) : null;
}

/** Where the next read of a kind starts: its watermark's cursor, null when there is none yet. */
export async function getCursor(db: Knex, t: StateTables, kind: Kind): Promise<Cursor | null> {
  return (await getWatermark(db, t, kind))?.cursor ?? null;
}

export async function listWatermarks(db: Knex, t: StateTables): Promise<Watermark[]> {
  const rows = (await db(t.watermarks).select('*').orderBy('kind')) as WatermarkRow[];
  return rows.map(fromRow);
}

/**
 * Move the watermark. Call it inside the transaction that writes the operations planned for
 * the rows it passes: that shared commit is what makes a crash lose nothing.
 */
export async function setWatermark(trx: Knex, t: StateTables, kind: Kind, cursor: Cursor, now = Date.now()): Promise<void> {
  await trx(t.watermarks)
    .insert({ kind, cursor_value: cursor.value, cursor_key: cursor.key, updated_at: now })
    .onConflict('kind')
    .merge(['cursor_value', 'cursor_key', 'updated_at']);
}

export async function setLastRescan(db: Knex, t: StateTables, kind: Kind, at: number): Promise<void> {
  const updated = await db(t.watermarks).where({ kind }).update({ last_rescan_at: at });
  if (updated === 0) await db(t.watermarks).insert({ kind, cursor_value: null, cursor_key: null, last_rescan_at: at, updated_at: at });
}
