import type { Knex } from 'knex';
import { sourceDialect } from '../db/dialect.js';
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
  const sql = sourceRelation(db, cfg).select('*').whereRaw('1 = 0').toSQL().toNative();
  return sourceDialect(db).resultColumns(db, sql);
}

/**
 * Whether `column` leads some index of `table` (so a range scan on it can use the index).
 * null when it cannot be told (e.g. a query source).
 */
export async function isLeadingIndexColumn(db: Knex, table: string, column: string): Promise<boolean> {
  const [schema, name] = table.includes('.') ? (table.split('.') as [string, string]) : [undefined, table];
  return sourceDialect(db).leadsIndex(db, { schema, name }, column);
}
