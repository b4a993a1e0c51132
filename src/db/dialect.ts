import type { Knex } from 'knex';
import { dialectOf } from './connect.js';
import type { DialectName } from './url.js';

/**
 * What differs between PostgreSQL, MySQL / MariaDB and SQLite, in one place.
 * Code elsewhere asks the capability object instead of branching on the dialect name.
 */
export interface Dialect {
  readonly name: DialectName;
  /** `SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL 9.5+, MySQL 8+, MariaDB 10.6+). SQLite has a single writer. */
  readonly skipLocked: boolean;
  /** Session-level advisory lock: pg_try_advisory_lock / GET_LOCK. SQLite uses a lease row. */
  readonly advisoryLock: boolean;
  /** Quote an identifier (table or column name). */
  quote(identifier: string): string;
}

const quoteDouble = (id: string) => `"${id.replace(/"/g, '""')}"`;
const quoteBacktick = (id: string) => `\`${id.replace(/`/g, '``')}\``;

const DIALECTS: Readonly<Record<DialectName, Dialect>> = Object.freeze({
  pg: { name: 'pg', skipLocked: true, advisoryLock: true, quote: quoteDouble },
  mysql: { name: 'mysql', skipLocked: true, advisoryLock: true, quote: quoteBacktick },
  sqlite: { name: 'sqlite', skipLocked: false, advisoryLock: false, quote: quoteDouble },
});

export function dialectFor(db: Knex | DialectName): Dialect {
  return DIALECTS[typeof db === 'string' ? db : dialectOf(db)];
}

// ---------------------------------------------------------------------------------------
// Source side: what reading the HR database (source/, check/, sample/) needs to know of
// each dialect. Callers ask `sourceDialect(db)`; none branches on the dialect's name.
// ---------------------------------------------------------------------------------------

/** An SQL fragment with its `??` / `?` bindings. */
export interface SqlFragment {
  readonly sql: string;
  readonly bindings: string[];
}

export interface SourceDialect {
  readonly name: DialectName;
  /** One row with `ms`: the database's own clock as epoch ms. */
  readonly nowMsSql: string;
  /** The rows of a `db.raw` result. */
  rawRows<T>(result: unknown): T[];
  /**
   * The keyset predicate `(col, key) > (v, k)` (or `<=`) as one index range. Row values on
   * PostgreSQL and SQLite; MySQL / MariaDB turn `col > v OR (col = v AND key > k)` into two
   * ranges on the (col, key) index but cannot use a row value.
   */
  readonly rowValueKeyset: boolean;
  /** A column cut to its first `n` characters, never by bytes where the dialect can help it. */
  textPrefix(column: string, n: number): SqlFragment;
  /** The byte length of an expression's value as read, on any column type (NULL for NULL). */
  byteLength(expression: string): string;
  /** The query builder numbers every `?`, literals included: one the operator wrote must be `\?`. */
  readonly escapesQuestionMarks: boolean;
  /** String literals take backslash escapes (MySQL). */
  readonly backslashEscapes: boolean;
  /** What to use instead of `?` operators of the dialect's own, for the placeholder error. */
  readonly placeholderHint: string;
  /** The column type of a zone-less timestamp with microseconds where the dialect has them. */
  readonly timestampType: string;
  /** The column names a query yields (it selects no rows). */
  resultColumns(db: Knex, sql: { sql: string; bindings: readonly unknown[] }): Promise<string[]>;
  /** Whether `column` leads some index of `table` (schema-qualified or in the search path). */
  leadsIndex(db: Knex, table: { schema?: string | undefined; name: string }, column: string): Promise<boolean>;
}

const PG_SOURCE: SourceDialect = {
  name: 'pg',
  nowMsSql: 'SELECT extract(epoch from clock_timestamp()) * 1000 AS ms',
  rawRows: <T>(res: unknown) => (res as { rows: T[] }).rows,
  rowValueKeyset: true,
  // PostgreSQL needs text for substr.
  textPrefix: (column, n) => ({ sql: `substr(CAST(?? AS text), 1, ${n})`, bindings: [column] }),
  byteLength: (e) => `octet_length(CAST(${e} AS text))`,
  escapesQuestionMarks: true,
  backslashEscapes: false,
  placeholderHint: '; for the jsonb operators ?, ?| and ?& use jsonb_exists, jsonb_exists_any and jsonb_exists_all',
  timestampType: 'timestamp(6)',
  async resultColumns(db, q) {
    const result = (await db.raw(q.sql, q.bindings as readonly Knex.Value[])) as { fields?: Array<{ name: string }> };
    return (result.fields ?? []).map((f) => f.name);
  },
  async leadsIndex(db, table, column) {
    const rows = (await db.raw(
      `SELECT 1 FROM pg_index i
         JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
        WHERE t.relname = ? AND a.attname = ?
          AND ${table.schema ? 'n.nspname = ?' : 'n.nspname = ANY (current_schemas(false))'}
        LIMIT 1`,
      table.schema ? [table.name, column, table.schema] : [table.name, column],
    )) as { rows: unknown[] };
    return rows.rows.length > 0;
  },
};

const MYSQL_SOURCE: SourceDialect = {
  name: 'mysql',
  nowMsSql: 'SELECT UNIX_TIMESTAMP(NOW(6)) * 1000 AS ms',
  rawRows: <T>(res: unknown) => (res as [T[]])[0],
  rowValueKeyset: false,
  textPrefix: (column, n) => ({ sql: `SUBSTRING(??, 1, ${n})`, bindings: [column] }),
  byteLength: (e) => `LENGTH(${e})`,
  escapesQuestionMarks: false,
  backslashEscapes: true,
  placeholderHint: '',
  timestampType: 'datetime(6)',
  async resultColumns(db, q) {
    // mysql2: [rows, fields]
    const result = (await db.raw(q.sql, q.bindings as readonly Knex.Value[])) as [unknown, Array<{ name: string }> | undefined];
    return (result[1] ?? []).map((f) => f.name);
  },
  async leadsIndex(db, table, column) {
    const [rows] = (await db.raw(
      `SELECT 1 FROM information_schema.statistics
        WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND column_name = ? AND seq_in_index = 1 LIMIT 1`,
      [table.schema ?? null, table.name, column],
    )) as [unknown[]];
    return rows.length > 0;
  },
};

const SQLITE_SOURCE: SourceDialect = {
  name: 'sqlite',
  nowMsSql: "SELECT (julianday('now') - 2440587.5) * 86400000.0 AS ms",
  rawRows: <T>(res: unknown) => res as T[],
  rowValueKeyset: true,
  // SQLite's substr stops at a NUL character: only a long value is cut, and as bytes (a
  // character split at the end lies far beyond what the mapper keeps).
  textPrefix: (column, n) => ({
    sql: `CASE WHEN length(CAST(?? AS BLOB)) > ${4 * n} THEN CAST(substr(CAST(?? AS BLOB), 1, ${4 * n}) AS TEXT) ELSE ?? END`,
    bindings: [column, column, column],
  }),
  byteLength: (e) => `length(CAST(${e} AS BLOB))`,
  escapesQuestionMarks: false,
  backslashEscapes: false,
  placeholderHint: '',
  timestampType: 'text',
  async resultColumns(db, q) {
    const conn = (await db.client.acquireConnection()) as { prepare(sql: string): { columns(): Array<{ name: string }> } };
    try {
      return conn.prepare(q.sql).columns().map((c) => c.name);
    } finally {
      await db.client.releaseConnection(conn);
    }
  },
  async leadsIndex(db, table, column) {
    const indexes = (await db.raw(`PRAGMA index_list(${JSON.stringify(table.name)})`)) as Array<{ name: string }>;
    for (const idx of indexes) {
      const cols = (await db.raw(`PRAGMA index_info(${JSON.stringify(idx.name)})`)) as Array<{ seqno: number; name: string }>;
      if (cols.some((c) => c.seqno === 0 && c.name === column)) return true;
    }
    return false;
  },
};

const SOURCE_DIALECTS: Readonly<Record<DialectName, SourceDialect>> = Object.freeze({ pg: PG_SOURCE, mysql: MYSQL_SOURCE, sqlite: SQLITE_SOURCE });

/** The source-side capabilities of a connection's dialect (or of a dialect named in a URL). */
export function sourceDialect(db: Knex | DialectName): SourceDialect {
  return SOURCE_DIALECTS[typeof db === 'string' ? db : dialectOf(db)];
}
