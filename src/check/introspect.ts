import type { Knex } from 'knex';
import { dialectFor } from '../db/dialect.js';
import { sourceRelation } from '../source/relation.js';
import type { AnyKindConfig, FieldSpec, DurationSpec } from '../config/schema.js';

/** The columns a kind's configuration reads, each with the config paths that name it. */
export function requiredColumns(kindPath: string, cfg: AnyKindConfig): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (column: string | undefined, at: string) => {
    if (!column) return;
    out.set(column, [...(out.get(column) ?? []), at]);
  };
  add(cfg.key, `${kindPath}.key`);
  if (cfg.cursor.mode === 'updated_at') add(cfg.cursor.column, `${kindPath}.cursor.column`);
  add(cfg.effective_date, `${kindPath}.effective_date`);
  add(cfg.status?.column, `${kindPath}.status.column`);
  add(cfg.deleted?.column, `${kindPath}.deleted.column`);
  for (const [name, spec] of Object.entries(cfg.fields as Record<string, FieldSpec | DurationSpec | undefined>)) {
    if (spec === undefined) continue;
    if (typeof spec === 'string') add(spec, `${kindPath}.fields.${name}`);
    else add(spec.column, `${kindPath}.fields.${name}.column`);
  }
  return out;
}

/**
 * The column names a source yields, read from the result metadata of the relation with
 * no rows selected (works for tables, views and operator queries alike).
 */
export async function sourceColumns(db: Knex, cfg: AnyKindConfig): Promise<string[]> {
  const dialect = dialectFor(db).name;
  const sql = sourceRelation(db, cfg).select('*').whereRaw('1 = 0').toSQL().toNative();
  if (dialect === 'sqlite') {
    const conn = (await db.client.acquireConnection()) as { prepare(sql: string): { columns(): Array<{ name: string }> } };
    try {
      return conn.prepare(sql.sql).columns().map((c) => c.name);
    } finally {
      await db.client.releaseConnection(conn);
    }
  }
  const result = (await db.raw(sql.sql, sql.bindings as readonly Knex.Value[])) as unknown;
  if (dialect === 'pg') return ((result as { fields: Array<{ name: string }> }).fields ?? []).map((f) => f.name);
  // mysql2: [rows, fields]
  const fields = (result as [unknown, Array<{ name: string }>])[1] ?? [];
  return fields.map((f) => f.name);
}

/**
 * Whether `column` leads some index of `table` (so a range scan on it can use the index).
 * null when it cannot be told (e.g. a query source).
 */
export async function isLeadingIndexColumn(db: Knex, table: string, column: string): Promise<boolean> {
  const dialect = dialectFor(db).name;
  const [schema, name] = table.includes('.') ? (table.split('.') as [string, string]) : [undefined, table];
  if (dialect === 'pg') {
    const rows = (await db.raw(
      `SELECT 1 FROM pg_index i
         JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
        WHERE t.relname = ? AND a.attname = ?
          AND ${schema ? 'n.nspname = ?' : 'n.nspname = ANY (current_schemas(false))'}
        LIMIT 1`,
      schema ? [name, column, schema] : [name, column],
    )) as { rows: unknown[] };
    return rows.rows.length > 0;
  }
  if (dialect === 'mysql') {
    const [rows] = (await db.raw(
      `SELECT 1 FROM information_schema.statistics
        WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND column_name = ? AND seq_in_index = 1 LIMIT 1`,
      [schema ?? null, name, column],
    )) as [unknown[]];
    return rows.length > 0;
  }
  const indexes = (await db.raw(`PRAGMA index_list(${JSON.stringify(name)})`)) as Array<{ name: string }>;
  for (const idx of indexes) {
    const cols = (await db.raw(`PRAGMA index_info(${JSON.stringify(idx.name)})`)) as Array<{ seqno: number; name: string }>;
    if (cols.some((c) => c.seqno === 0 && c.name === column)) return true;
  }
  return false;
}
