import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import fs from 'node:fs';
import path from 'node:path';
import { parseDatabaseUrl, type DatabaseTarget, type DialectName } from './url.js';
import { redact, registerSecret } from '../log/redact.js';
import { getLogger } from '../log/logger.js';
import { AppError, ExitCode, describeError } from '../errors.js';

export type { Knex };

/*
 * Zone-less timestamps (`timestamp without time zone`, DATETIME) are read as the
 * database's own strings and interpreted in the configured source zone by the mapper,
 * never by the Node process's local zone. PostgreSQL keeps microseconds, which a JS Date
 * would cut: cursors stay strings end to end.
 */
const PG_TIMESTAMP = 1114;
const PG_TIMESTAMPTZ = 1184;
const PG_DATE = 1082;
pg.types.setTypeParser(PG_TIMESTAMP, (v) => v);
pg.types.setTypeParser(PG_TIMESTAMPTZ, (v) => v);
pg.types.setTypeParser(PG_DATE, (v) => v);

export interface ConnectOptions {
  /** Pool size for client/server databases. */
  poolMax?: number;
  /** Application name shown in pg_stat_activity. */
  applicationName?: string;
  /** Which database this is, for messages: "source", "state", "source and state". */
  role?: string;
  /** SQLite: open read-only (a source is only ever read). */
  readonly?: boolean;
  /** SQLite: the file must exist (a mistyped source path must not create an empty database). */
  mustExist?: boolean;
}

/** How long a database server may take to accept a connection before it counts as not answering. */
export const CONNECT_TIMEOUT_MS = 5_000;

export function knexConfigFor(target: DatabaseTarget, opts: ConnectOptions = {}): Knex.Config {
  switch (target.dialect) {
    case 'pg':
      return {
        client: 'pg',
        connection: {
          host: target.host,
          port: target.port,
          user: target.user,
          password: target.password,
          database: target.database,
          application_name: opts.applicationName ?? 'attendance-sync',
          connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
          ...(target.params.sslmode && target.params.sslmode !== 'disable' ? { ssl: { rejectUnauthorized: target.params.sslmode === 'verify-full' } } : {}),
        },
        pool: { min: 0, max: opts.poolMax ?? 4 },
        acquireConnectionTimeout: 10_000,
      };
    case 'mysql':
      return {
        client: 'mysql2',
        connection: {
          host: target.host,
          port: target.port,
          user: target.user,
          password: target.password,
          database: target.database,
          dateStrings: true,
          supportBigNumbers: true,
          bigNumberStrings: true,
          charset: 'utf8mb4',
          timezone: 'Z',
          connectTimeout: CONNECT_TIMEOUT_MS,
        },
        pool: { min: 0, max: opts.poolMax ?? 4 },
        acquireConnectionTimeout: 10_000,
      };
    case 'sqlite':
      return {
        client: 'better-sqlite3',
        connection: { filename: target.filename ?? ':memory:', ...(opts.readonly ? { options: { readonly: true } } : {}) },
        useNullAsDefault: true,
        pool: {
          min: 1,
          max: 1,
          afterCreate: (conn: { pragma: (s: string) => unknown }, done: (err: Error | null, conn: unknown) => void) => {
            // WAL lets `status` read while the worker writes; busy_timeout makes a second
            // process wait for the write lock instead of failing at once.
            // (A read-only source keeps whatever journal mode its owner chose.)
            if (!opts.readonly) conn.pragma('journal_mode = WAL');
            conn.pragma('busy_timeout = 5000');
            done(null, conn);
          },
        },
      };
  }
}

/** Open a knex instance for a database URL. The password is registered for redaction first. */
export function connect(url: string | DatabaseTarget, opts: ConnectOptions = {}): Knex {
  const target = typeof url === 'string' ? parseDatabaseUrl(url) : url;
  registerSecret(target.password);
  const label = opts.role ? `${opts.role} database` : 'database';
  if (target.dialect === 'sqlite' && target.filename && target.filename !== ':memory:') {
    if (opts.mustExist) {
      if (!fs.existsSync(target.filename)) {
        throw new AppError('DATABASE_NOT_FOUND', `the ${label} ${target.filename} does not exist (${target.display}): check the path; a source database is opened read-only and never created`, {
          exitCode: ExitCode.USAGE,
        });
      }
    } else fs.mkdirSync(path.dirname(target.filename), { recursive: true });
  }
  // knex prints pool and driver trouble straight to the console; route it through our
  // (redacting) logger at debug level instead: callers report the failures that matter.
  const log = (level: 'warn' | 'debug') => (message: unknown) => getLogger().log(level, `knex: ${redact(String(message))}`);
  const db = knexFactory({ ...knexConfigFor(target, opts), log: { warn: log('debug'), error: log('debug'), deprecate: log('debug'), debug: log('debug') } });
  // Every query and transaction takes its connection here: a failure to get one says which
  // database, where, and what happened, instead of the driver's bare ECONNREFUSED or knex's
  // "the pool is probably full".
  const client = db.client as { acquireConnection: () => Promise<unknown> };
  const acquire = client.acquireConnection.bind(client);
  client.acquireConnection = async () => {
    try {
      return await acquire();
    } catch (err) {
      throw connectionError(err, label, target);
    }
  };
  return db;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET']);

/** A failure to connect, worded for the operator: which database, host and port, and why. */
export function connectionError(err: unknown, label: string, target: DatabaseTarget): AppError {
  if (err instanceof AppError) return err;
  const code = String((err as { code?: unknown }).code ?? '');
  const text = err instanceof Error ? err.message : String(err);
  const where = target.dialect === 'sqlite' ? target.display : `${target.host}:${target.port} (${target.display})`;
  let why: string;
  if (code === 'ECONNREFUSED') why = 'refused the connection (ECONNREFUSED): is the database server running on that host and port?';
  else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') why = `host ${target.host} not found (${code})`;
  else if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') why = `host ${target.host} is unreachable (${code})`;
  else if (code === 'ETIMEDOUT' || /timeout expired|connection timeout/i.test(text)) why = `did not answer within ${CONNECT_TIMEOUT_MS / 1000} s (host down, wrong host or port, or a firewall dropping packets)`;
  else if ((err as { name?: unknown }).name === 'KnexTimeoutError') why = 'gave no connection in time: it did not answer, or every pooled connection is busy';
  else why = redact(describeError(err));
  return new DatabaseConnectError(UNREACHABLE.has(code) || why.startsWith('did not') ? 'DATABASE_UNREACHABLE' : 'DATABASE_CONNECT_FAILED', `cannot connect to the ${label} at ${where}: ${why}`, why, err);
}

/** A connection that could not be made; `reason` is the part after the database's name. */
export class DatabaseConnectError extends AppError {
  constructor(
    code: string,
    message: string,
    readonly reason: string,
    cause: unknown,
  ) {
    super(code, message, { retryable: true, cause });
    this.name = 'DatabaseConnectError';
  }
}

export function dialectOf(db: Knex): DialectName {
  const client = (db.client as { config: { client: unknown } }).config.client;
  if (client === 'pg') return 'pg';
  if (client === 'mysql2' || client === 'mysql') return 'mysql';
  return 'sqlite';
}
