import type { Knex } from 'knex';
import type { Kind } from '../kinds.js';
import type { StateTables } from './tables.js';
import { toMillis } from './values.js';

/** The keyset position of a kind: the cursor column's value (the source DB's own string) and the key. */
export interface Watermark {
  readonly kind: Kind;
  readonly cursorValue: string | null;
  readonly cursorKey: string | null;
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
    cursorValue: r.cursor_value,
    cursorKey: r.cursor_key,
    lastRescanAt: toMillis(r.last_rescan_at),
    updatedAt: toMillis(r.updated_at) ?? 0,
  };
}

export async function getWatermark(db: Knex, t: StateTables, kind: Kind): Promise<Watermark | null> {
  const row = (await db(t.watermarks).where({ kind }).first()) as WatermarkRow | undefined;
  return row ? fromRow(row) : null;
}

export async function listWatermarks(db: Knex, t: StateTables): Promise<Watermark[]> {
  const rows = (await db(t.watermarks).select('*').orderBy('kind')) as WatermarkRow[];
  return rows.map(fromRow);
}

/**
 * Move the watermark. Call it inside the transaction that writes the operations planned for
 * the rows it passes: that shared commit is what makes a crash lose nothing.
 */
export async function setWatermark(
  trx: Knex,
  t: StateTables,
  kind: Kind,
  w: { cursorValue: string | null; cursorKey: string | null; now?: number },
): Promise<void> {
  const now = w.now ?? Date.now();
  await trx(t.watermarks)
    .insert({ kind, cursor_value: w.cursorValue, cursor_key: w.cursorKey, updated_at: now })
    .onConflict('kind')
    .merge(['cursor_value', 'cursor_key', 'updated_at']);
}

export async function setLastRescan(db: Knex, t: StateTables, kind: Kind, at: number): Promise<void> {
  const updated = await db(t.watermarks).where({ kind }).update({ last_rescan_at: at });
  if (updated === 0) await db(t.watermarks).insert({ kind, cursor_value: null, cursor_key: null, last_rescan_at: at, updated_at: at });
}
