import type { Knex } from 'knex';
import type { AnyKindConfig, FieldSpec } from '../config/schema.js';
import { ConfigError } from '../errors.js';

/**
 * The relation a kind reads: its table, or the operator's SQL wrapped as a subquery. The
 * worker's own filters (cursor, dates, keys) go around it, always through bindings. The
 * operator's SQL is used as written, so it must not contain `?` placeholders of its own.
 */
export function sourceRelation(db: Knex, cfg: AnyKindConfig): Knex.QueryBuilder {
  if (cfg.source.table) return db.from(cfg.source.table);
  const sql = (cfg.source.query ?? '').trim().replace(/;\s*$/, '');
  if (/\?/.test(sql.replace(/'[^']*'/g, ''))) {
    throw new ConfigError(['source.query: must not contain `?` placeholders (the worker binds its own filters around the query)']);
  }
  return db.from(db.raw(`(${sql}) as src`));
}

/** The column a field reads, when it is a plain column. */
export function fieldColumn(spec: FieldSpec | undefined): string | undefined {
  if (spec === undefined) return undefined;
  return typeof spec === 'string' ? spec : spec.column;
}

/** The date column of backfill and rescan windows: `effective_date`, else the start_time column. */
export function effectiveDateColumn(cfg: AnyKindConfig): string {
  const col = cfg.effective_date ?? fieldColumn(cfg.fields.start_time);
  if (!col) throw new ConfigError([`effective_date: required when fields.start_time is not a column`]);
  return col;
}

/** The cursor column (mode updated_at) or the key (mode id). */
export function cursorColumn(cfg: AnyKindConfig): string {
  return cfg.cursor.mode === 'updated_at' && cfg.cursor.column ? cfg.cursor.column : cfg.key;
}
