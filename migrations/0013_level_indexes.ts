import type { Knex } from 'knex';
import type { StateMigration } from './types.js';

/**
 * Brings a state database level that was migrated by an earlier text of 0001 and 0003:
 *
 * - 0003 first shipped without the claim index `(status, id)`: the claim then scans the whole
 *   outbox on every pass. The index is created here when it is missing.
 * - 0001 first shipped `cursor_value` VARCHAR(64) and `cursor_key` VARCHAR(191): a page ending
 *   on a longer cursor or key value could never commit its watermark. The columns are widened
 *   to TEXT here when they are still narrower (SQLite does not enforce VARCHAR lengths).
 *
 * A database migrated by today's 0001 and 0003 already has both; this step then changes nothing.
 * Each statement checks the catalog first, so a re-run after a half-applied step (MySQL and
 * MariaDB commit DDL on their own) is safe.
 */

/** The dialect of a connection, told by its knex client (here, not imported: a landed migration must not change with the code). */
function dialectOf(knex: Knex): 'pg' | 'mysql' | 'sqlite' {
  const client = String(knex.client.config.client);
  if (client === 'pg' || client === 'postgres' || client === 'postgresql') return 'pg';
  return client.startsWith('mysql') ? 'mysql' : 'sqlite';
}

async function hasIndex(knex: Knex, table: string, index: string): Promise<boolean> {
  const d = dialectOf(knex);
  if (d === 'pg') {
    const r = await knex.raw(`SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ? AND indexname = ?`, [table, index]);
    return r.rows.length > 0;
  }
  if (d === 'mysql') {
    const [rows] = await knex.raw(`SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?`, [table, index]);
    return (rows as unknown[]).length > 0;
  }
  const rows = (await knex.raw(`SELECT 1 FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name = ?`, [table, index])) as unknown[];
  return rows.length > 0;
}

/** The column's type as the catalog names it, lower case (`character varying`, `varchar`, `text`, …). */
async function columnType(knex: Knex, table: string, column: string): Promise<string | undefined> {
  const d = dialectOf(knex);
  if (d === 'pg') {
    const r = await knex.raw(`SELECT data_type AS t FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?`, [table, column]);
    return r.rows[0] ? String(r.rows[0].t).toLowerCase() : undefined;
  }
  if (d === 'mysql') {
    const [rows] = await knex.raw(`SELECT data_type AS t FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?`, [table, column]);
    const row = (rows as Array<{ t: unknown }>)[0];
    return row ? String(row.t).toLowerCase() : undefined;
  }
  return undefined;
}

export const migration: StateMigration = {
  name: '0013_level_indexes',
  async up(knex, t) {
    const claimIdx = `${t.syncRecords}_claim_idx`;
    if ((await knex.schema.hasTable(t.syncRecords)) && !(await hasIndex(knex, t.syncRecords, claimIdx))) {
      await knex.schema.alterTable(t.syncRecords, (tb) => {
        tb.index(['status', 'id'], claimIdx);
      });
    }
    if (!(await knex.schema.hasTable(t.watermarks))) return;
    const d = dialectOf(knex);
    for (const column of ['cursor_value', 'cursor_key']) {
      const type = await columnType(knex, t.watermarks, column);
      if (type === undefined || /text/.test(type)) continue;
      if (d === 'pg') await knex.raw(`ALTER TABLE ?? ALTER COLUMN ?? TYPE text`, [t.watermarks, column]);
      else if (d === 'mysql') await knex.raw(`ALTER TABLE ?? MODIFY ?? TEXT NULL`, [t.watermarks, column]);
    }
  },
  // Nothing to undo: the index and the wide columns are what 0001 and 0003 create today.
  async down() {},
};
