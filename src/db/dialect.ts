import type { Knex } from 'knex';
import type { DialectName } from './url.js';
import type { TlsMode } from './tls.js';

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
