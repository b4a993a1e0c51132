import type { Knex } from 'knex';

/** The database families the worker speaks. */
export type DialectName = 'pg' | 'mysql' | 'sqlite';
/** TLS modes, libpq's names (sslmode). */
export type TlsMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

/**
 * What differs between PostgreSQL, MySQL / MariaDB and SQLite, in one place.
 * Code elsewhere asks the capability object instead of branching on the dialect name.
 */
export interface Dialect {
  readonly name: DialectName;
  /** The knex client names that open this dialect (the first is the one `connect` uses). */
  readonly knexClients: readonly string[];
  /** The URL schemes that name this dialect. */
  readonly urlSchemes: readonly string[];
  /** A database server reached over the network (host, port, TLS); false: a local file. */
  readonly server: boolean;
  /** The port a URL without one means. */
  readonly defaultPort: number | null;
  /** How a URL's query parameters ask for TLS; null: the dialect has no TLS. */
  readonly tlsUrl: TlsUrlSyntax | null;
  /** `SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL 9.5+, MySQL 8+, MariaDB 10.6+). SQLite has a single writer. */
  readonly skipLocked: boolean;
  /**
   * The isolation level of the transaction that claims due operations (undefined: the
   * database's default). READ COMMITTED on MySQL / MariaDB: locking reads then lock the rows
   * they return, not the gaps between them, so concurrent claimers skip each other instead
   * of deadlocking.
   */
  readonly claimIsolation: Knex.IsolationLevels | undefined;
  /** Driver error codes of a lock conflict (deadlock, lock wait timeout, busy database). */
  readonly lockConflictCodes: readonly string[];
  /** The session lock the leader lock is held with; null: a lease row in the lock table instead. */
  readonly sessionLock: SessionLockSql | null;
  /**
   * `INSERT … RETURNING` (PostgreSQL, SQLite 3.35+). False: the driver reports only how many
   * rows a statement inserted (MySQL / MariaDB's affectedRows).
   */
  readonly insertReturning: boolean;
  /**
   * How a transaction keeps a table from changing while it reads it: a table-lock statement
   * (its one binding: the table), or locking reads (`FOR SHARE`), or neither (SQLite: the
   * transaction that writes holds the whole database).
   */
  readonly holdStill: { readonly lockTable: string | null; readonly lockingRead: boolean };
}

/** The TLS parameters of a database URL, with the driver's own names and modes. */
export interface TlsUrlSyntax {
  readonly params: { readonly mode: string; readonly root: string; readonly cert: string; readonly key: string; readonly pass: string };
  /** The accepted spellings of the mode parameter and what each means. */
  readonly modes: Readonly<Record<string, TlsMode>>;
  /** Whether the mode is matched without regard to case (MySQL's ssl-mode). */
  readonly modeCaseInsensitive: boolean;
  /** The root-certificate parameter accepts `system` (the system's roots). */
  readonly systemRoot: boolean;
  /** A root certificate given without a mode turns on chain verification (MySQL). */
  readonly rootWithoutModeVerifies: boolean;
  /** A root certificate given with `require` turns on chain verification (libpq). */
  readonly rootWithRequireVerifies: boolean;
}

/**
 * Session-level lock statements (bound to one kept connection): released by the server as
 * soon as the session ends, so a crashed holder frees the lock at once. Each takes the lock
 * name as its only binding.
 */
export interface SessionLockSql {
  /** Returns one row with `got`: whether the lock was taken (without waiting). */
  readonly tryLock: string;
  /** Returns one row with `mine`: whether this session still holds the lock. */
  readonly holds: string;
  readonly unlock: string;
  /** The rows of a raw query's result. */
  rows<T>(result: unknown): T[];
  /** A `got` / `mine` value read as a boolean. */
  isTrue(value: unknown): boolean;
}

/**
 * MySQL / MariaDB user locks are server-wide (PostgreSQL advisory locks belong to one
 * database): the name includes the database, so workers of two state databases on one
 * server (staging and production, two companies) never wait for each other. Hashed, because
 * lock names are limited to 64 characters.
 */
const MYSQL_LOCK_NAME = "SHA1(CONCAT(COALESCE(DATABASE(), ''), '/', ?))";

const PG_SESSION_LOCK: SessionLockSql = {
  tryLock: 'SELECT pg_try_advisory_lock(hashtext(?)) AS got',
  holds: `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                AND objid = (hashtext(?)::bigint & 4294967295)::oid) AS mine`,
  unlock: 'SELECT pg_advisory_unlock(hashtext(?))',
  rows: <T>(result: unknown) => (result as { rows: T[] }).rows,
  isTrue: (value) => value === true,
};

const MYSQL_SESSION_LOCK: SessionLockSql = {
  tryLock: `SELECT GET_LOCK(${MYSQL_LOCK_NAME}, 0) AS got`,
  holds: `SELECT IS_USED_LOCK(${MYSQL_LOCK_NAME}) = CONNECTION_ID() AS mine`,
  unlock: `SELECT RELEASE_LOCK(${MYSQL_LOCK_NAME})`,
  rows: <T>(result: unknown) => (result as [T[]])[0],
  isTrue: (value) => Number(value) === 1,
};

const PG_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;

const DIALECTS: Readonly<Record<DialectName, Dialect>> = Object.freeze({
  pg: {
    name: 'pg',
    knexClients: ['pg'],
    urlSchemes: ['postgres', 'postgresql'],
    server: true,
    defaultPort: 5432,
    tlsUrl: {
      params: { mode: 'sslmode', root: 'sslrootcert', cert: 'sslcert', key: 'sslkey', pass: 'sslpassword' },
      modes: Object.fromEntries(PG_MODES.map((m) => [m, m])),
      modeCaseInsensitive: false,
      systemRoot: true,
      rootWithoutModeVerifies: false,
      rootWithRequireVerifies: true,
    },
    skipLocked: true,
    claimIsolation: undefined,
    // deadlock_detected, lock_not_available, serialization_failure
    lockConflictCodes: ['40P01', '55P03', '40001'],
    sessionLock: PG_SESSION_LOCK,
    insertReturning: true,
    holdStill: { lockTable: 'LOCK TABLE ?? IN SHARE MODE', lockingRead: false },
  },
  mysql: {
    name: 'mysql',
    knexClients: ['mysql2', 'mysql'],
    urlSchemes: ['mysql', 'mariadb'],
    server: true,
    defaultPort: 3306,
    // MySQL has no "allow".
    tlsUrl: {
      params: { mode: 'ssl-mode', root: 'ssl-ca', cert: 'ssl-cert', key: 'ssl-key', pass: 'ssl-passphrase' },
      modes: { DISABLED: 'disable', PREFERRED: 'prefer', REQUIRED: 'require', VERIFY_CA: 'verify-ca', VERIFY_IDENTITY: 'verify-full' },
      modeCaseInsensitive: true,
      systemRoot: false,
      rootWithoutModeVerifies: true,
      rootWithRequireVerifies: false,
    },
    skipLocked: true,
    claimIsolation: 'read committed',
    lockConflictCodes: ['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT'],
    sessionLock: MYSQL_SESSION_LOCK,
    insertReturning: false,
    holdStill: { lockTable: null, lockingRead: true },
  },
  sqlite: {
    name: 'sqlite',
    knexClients: ['better-sqlite3', 'sqlite3'],
    urlSchemes: ['sqlite'],
    server: false,
    defaultPort: null,
    tlsUrl: null,
    skipLocked: false,
    claimIsolation: undefined,
    lockConflictCodes: ['SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT'],
    sessionLock: null,
    insertReturning: true,
    holdStill: { lockTable: null, lockingRead: false },
  },
});

/** The capabilities of a dialect, by name or of an open knex instance. */
export function dialectFor(db: Knex | DialectName): Dialect {
  if (typeof db === 'string') return DIALECTS[db];
  const client = String((db.client as { config: { client: unknown } }).config.client);
  return Object.values(DIALECTS).find((d) => d.knexClients.includes(client)) ?? DIALECTS.sqlite;
}

/** The dialect a URL scheme names (lower case, without the colon); undefined when none does. */
export function dialectForScheme(scheme: string): Dialect | undefined {
  return Object.values(DIALECTS).find((d) => d.urlSchemes.includes(scheme));
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
  return SOURCE_DIALECTS[typeof db === 'string' ? db : dialectFor(db).name];
}
