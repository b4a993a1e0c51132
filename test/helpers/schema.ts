import type { Knex } from 'knex';
import { dialectFor } from '../../src/db/dialect.js';

/** Columns (name, type, nullable) and indexes of a table, read from the catalog of each dialect. */
export async function describeTable(db: Knex, table: string): Promise<{ columns: string[]; indexes: string[] }> {
  const d = dialectFor(db).name;
  if (d === 'pg') {
    const cols = await db.raw(
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position`,
      [table],
    );
    const idx = await db.raw(`SELECT indexdef FROM pg_indexes WHERE tablename = ? ORDER BY indexname`, [table]);
    return {
      columns: cols.rows.map((r: any) => `${r.column_name} ${r.data_type}${r.is_nullable === 'YES' ? ' null' : ''}`),
      indexes: idx.rows.map((r: any) => String(r.indexdef).replace(/ ON \S+\./, ' ON ')),
    };
  }
  if (d === 'mysql') {
    const [cols] = await db.raw(
      `SELECT column_name AS c, column_type AS t, is_nullable AS n FROM information_schema.columns WHERE table_name = ? AND table_schema = DATABASE() ORDER BY ordinal_position`,
      [table],
    );
    const [idx] = await db.raw(
      `SELECT index_name AS i, non_unique AS nu, GROUP_CONCAT(column_name ORDER BY seq_in_index) AS cols FROM information_schema.statistics WHERE table_name = ? AND table_schema = DATABASE() GROUP BY index_name, non_unique ORDER BY index_name`,
      [table],
    );
    return {
      columns: cols.map((r: any) => `${r.c} ${r.t}${r.n === 'YES' ? ' null' : ''}`),
      indexes: idx.map((r: any) => `${r.i}${Number(r.nu) === 0 ? ' unique' : ''} (${r.cols})`),
    };
  }
  const cols = await db.raw(`PRAGMA table_info(${JSON.stringify(table)})`);
  const idx = await db.raw(`PRAGMA index_list(${JSON.stringify(table)})`);
  const indexes: string[] = [];
  for (const i of [...idx].sort((a: any, b: any) => String(a.name).localeCompare(String(b.name)))) {
    const info = await db.raw(`PRAGMA index_info(${JSON.stringify(i.name)})`);
    indexes.push(`${i.name}${i.unique ? ' unique' : ''} (${info.map((c: any) => c.name).join(',')})`);
  }
  return { columns: cols.map((c: any) => `${c.name} ${c.type}${c.notnull ? '' : ' null'}${c.pk ? ' pk' : ''}`), indexes };
}
