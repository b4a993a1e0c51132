import type { Knex } from 'knex';
import type { AnyKindConfig, FieldSpec } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { dialectFor } from '../db/dialect.js';
import type { DialectName } from '../db/url.js';

/**
 * The relation a kind reads: its table, or the operator's SQL wrapped as a subquery. The
 * worker's own filters (cursor, dates, keys) go around it, always through bindings. The
 * operator's SQL is used as written, so it must not contain `?` placeholders of its own.
 */
export function sourceRelation(db: Knex, cfg: AnyKindConfig): Knex.QueryBuilder {
  if (cfg.source.table) return db.from(cfg.source.table);
  const sql = operatorSql((cfg.source.query ?? '').trim().replace(/;\s*$/, ''), dialectFor(db).name);
  // The newline ends a trailing `-- comment` before the closing parenthesis.
  return db.from(db.raw(`(${sql}\n) as src`));
}

/**
 * The operator's query made safe to embed: a `?` outside string literals, quoted names and
 * comments is refused (it would take one of the worker's bindings); one inside them is kept
 * as text. PostgreSQL needs it escaped (`\?`): the query builder numbers every other `?`
 * as $n, literals included. SQLite and MySQL skip literals themselves.
 */
export function operatorSql(sql: string, dialect: DialectName): string {
  let out = '';
  let i = 0;
  const keep = (c: string) => (c === '?' && dialect === 'pg' ? '\\?' : c);
  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end < 0 ? sql.length : end;
      for (; i < stop; i++) out += keep(sql[i]!);
      continue;
    }
    if (c === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      const stop = end < 0 ? sql.length : end + 2;
      for (; i < stop; i++) out += keep(sql[i]!);
      continue;
    }
    if (c === "'" || c === '"' || c === '`') {
      out += c;
      i++;
      while (i < sql.length) {
        const d = sql[i]!;
        // MySQL strings take backslash escapes; elsewhere a backslash is a character.
        if (d === '\\' && dialect === 'mysql' && c !== '`') {
          out += d + (sql[i + 1] ?? '');
          i += 2;
          continue;
        }
        if (d === c) {
          out += d;
          i++;
          // A doubled quote is the quote itself, still inside.
          if (sql[i] === c) {
            out += c;
            i++;
            continue;
          }
          break;
        }
        out += keep(d);
        i++;
      }
      continue;
    }
    if (c === '?') {
      throw new ConfigError([
        `source.query: \`?\` at character ${i + 1} is outside any string literal or comment; the query must not use placeholders (the worker binds its own filters around it)${dialect === 'pg' ? '; for the jsonb operators ?, ?| and ?& use jsonb_exists, jsonb_exists_any and jsonb_exists_all' : ''}`,
      ]);
    }
    out += c;
    i++;
  }
  return out;
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
