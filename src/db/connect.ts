import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import fs from 'node:fs';
import tls from 'node:tls';
import path from 'node:path';
import { parseDatabaseUrl, type DatabaseTarget, type DialectName } from './url.js';
import { mysqlOffersTls, mysqlSslOptions, pgOffersTls, tlsOptions, type TlsSpec } from './tls.js';
import { dialectFor } from './dialect.js';
import { redact, registerSecret, sanitizeErrorText } from '../log/redact.js';
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

/** The knex settings of each dialect: its driver's connection options, pool and timeouts. */
const KNEX_CONFIG: Readonly<Record<DialectName, (target: DatabaseTarget, opts: ConnectOptions) => Knex.Config>> = {
  pg: (target, opts) => {
    const base = {
      host: target.host,
      port: target.port,
      user: target.user,
      password: target.password,
      database: target.database,
      application_name: opts.applicationName ?? 'attendance-sync',
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    };
    return {
      client: dialectFor('pg').knexClients[0],
      connection: withTls(base, target.tls, {
        offersTls: () => pgOffersTls(target.host ?? '127.0.0.1', target.port ?? 5432),
        refusesPlain: () => pgRefusesPlain(base),
        ssl: () => tlsOptions(target.tls),
      }),
      pool: { min: 0, max: opts.poolMax ?? 4 },
      acquireConnectionTimeout: 10_000,
    };
  },
  mysql: (target, opts) => {
    const base = {
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
    };
    return {
      client: dialectFor('mysql').knexClients[0],
      connection: withTls(base, target.tls, {
        offersTls: () => mysqlOffersTls(target.host ?? '127.0.0.1', target.port ?? 3306),
        // MySQL has no "allow": parseTls never yields it for MySQL URLs.
        refusesPlain: async () => false,
        ssl: () => mysqlSslOptions(target.tls),
      }),
      pool: {
        min: 0,
        max: opts.poolMax ?? 4,
        ...(target.tls.mode === 'verify-full' ? { afterCreate: verifyMysqlServerName(target.host ?? '127.0.0.1') } : {}),
      },
      acquireConnectionTimeout: 10_000,
    };
  },
  sqlite: (target, opts) => ({
    client: dialectFor('sqlite').knexClients[0],
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
  }),
};

export function knexConfigFor(target: DatabaseTarget, opts: ConnectOptions = {}): Knex.Config {
  return KNEX_CONFIG[target.dialect](target, opts);
}

type ConnectionSettings = Record<string, unknown>;

/**
 * The driver settings for a TLS mode. Fixed modes are plain settings; `prefer` and `allow`
 * depend on the server, so they become a provider knex asks once, on the first connection
 * (and again after a failure): `prefer` asks the server whether it offers TLS, `allow`
 * tries plain and turns to TLS only when the server refuses a connection without it.
 */
function withTls(
  base: ConnectionSettings,
  tls: TlsSpec,
  how: { offersTls: () => Promise<boolean>; refusesPlain: () => Promise<boolean>; ssl: () => unknown },
): ConnectionSettings | (() => Promise<ConnectionSettings>) {
  switch (tls.mode) {
    case 'disable':
      return base;
    case 'require':
    case 'verify-ca':
    case 'verify-full':
      return { ...base, ssl: how.ssl() };
    case 'prefer':
      return async () => ((await how.offersTls()) ? { ...base, ssl: how.ssl() } : { ...base });
    case 'allow':
      return async () => ((await how.refusesPlain()) ? { ...base, ssl: how.ssl() } : { ...base });
  }
}

/**
 * mysql2 checks the certificate against "localhost" when the host is an IP address (it
 * gives TLS no server name), so VERIFY_IDENTITY checks the name itself on every new
 * connection and refuses one whose certificate does not name the host.
 */
function verifyMysqlServerName(host: string) {
  return (conn: { stream?: unknown }, done: (err: Error | null, conn: unknown) => void) => {
    const stream = conn.stream as Partial<tls.TLSSocket> | undefined;
    const cert = typeof stream?.getPeerCertificate === 'function' ? stream.getPeerCertificate(true) : undefined;
    if (!cert || Object.keys(cert).length === 0) return done(new Error(`ssl-mode VERIFY_IDENTITY: the connection to ${host} is not using TLS`), conn);
    const mismatch = tls.checkServerIdentity(host, cert);
    done(mismatch ?? null, conn);
  };
}

/** PostgreSQL `allow`: a plain connection the server rejects for want of encryption (pg_hba.conf). */
async function pgRefusesPlain(base: ConnectionSettings): Promise<boolean> {
  const client = new pg.Client({ ...base, ssl: false } as pg.ClientConfig);
  try {
    await client.connect();
    return false;
  } catch (err) {
    if ((err as { code?: unknown }).code === '28000' && /no encryption|SSL off/i.test(String((err as Error).message))) return true;
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Open a knex instance for a database URL. The password is registered for redaction first. */
export function connect(url: string | DatabaseTarget, opts: ConnectOptions = {}): Knex {
  const target = typeof url === 'string' ? parseDatabaseUrl(url) : url;
  registerSecret(target.password);
  registerSecret(target.tls.passphrase);
  const label = opts.role ? `${opts.role} database` : 'database';
  if (!dialectFor(target.dialect).server && target.filename && target.filename !== ':memory:') {
    if (opts.mustExist) {
      if (!fs.existsSync(target.filename)) {
        throw new AppError('DATABASE_NOT_FOUND', `the ${label} ${target.filename} does not exist (${target.display}): check the path; a source database is opened read-only and never created`, {
          exitCode: ExitCode.USAGE,
        });
      }
    } else {
      fs.mkdirSync(path.dirname(target.filename), { recursive: true });
      createPrivateFile(target.filename);
    }
  }
  // knex prints pool and driver trouble straight to the console; route it through our
  // (redacting) logger at debug level instead: callers report the failures that matter.
  const log = (level: 'warn' | 'debug') => (message: unknown) => getLogger().log(level, `knex: ${redact(String(message))}`);
  // compileSqlOnError false: knex would otherwise inline every bound value (employee ids,
  // leave reasons, a whole page of them) into the error message.
  const db = knexFactory({
    ...knexConfigFor(target, opts),
    compileSqlOnError: false,
    log: { warn: log('debug'), error: log('debug'), deprecate: log('debug'), debug: log('debug') },
  });
  db.on('query-error', (err: unknown, query: { sql?: unknown }) => scrubQueryError(err, typeof query?.sql === 'string' ? query.sql : undefined));
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

/**
 * A new SQLite database file is created empty with mode 0600 before SQLite opens it: it holds
 * employee ids and leave reasons, and SQLite gives its -wal and -shm files the mode of the
 * database file. An existing file keeps the mode its owner gave it.
 */
function createPrivateFile(file: string): void {
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** Driver fields that repeat the statement or the offending values. */
const VALUE_FIELDS = ['sql', 'detail', 'where', 'internalQuery', 'parameters', 'bindings'] as const;

/**
 * Rewrite a failed query's error in place, before anyone catches it: the driver's message
 * first (masked), then the start of the statement (placeholders only, no values), and no
 * field that holds the statement with values (mysql2 `sql`, PostgreSQL `detail`).
 */
export function scrubQueryError(err: unknown, sql: string | undefined): void {
  // Duck-typed: native driver errors may come from another realm (vm contexts under test).
  if (typeof err !== 'object' || err === null || typeof (err as { message?: unknown }).message !== 'string') return;
  const e = err as Error & Record<string, unknown>;
  let driverMessage = e.message;
  if (sql !== undefined && driverMessage.startsWith(`${sql} - `)) driverMessage = driverMessage.slice(sql.length + 3);
  const statement = sql === undefined ? '' : ` [statement: ${sql.replace(/\s+/g, ' ').slice(0, 120)}${sql.length > 120 ? '…' : ''}]`;
  e.message = sanitizeErrorText(`${driverMessage}${statement}`);
  for (const field of VALUE_FIELDS) if (field in e) delete e[field];
  if (typeof e.sqlMessage === 'string') e.sqlMessage = sanitizeErrorText(e.sqlMessage);
  // The stack's first line is the driver's original message.
  if (typeof e.stack === 'string') e.stack = `${e.name}: ${e.message}\n${e.stack.split('\n').filter((l) => /^\s+at /.test(l)).join('\n')}`;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET']);

/** A failure to connect, worded for the operator: which database, host and port, and why. */
export function connectionError(err: unknown, label: string, target: DatabaseTarget): AppError {
  if (err instanceof AppError) return err;
  const code = String((err as { code?: unknown }).code ?? '');
  const text = err instanceof Error ? err.message : String(err);
  const where = !dialectFor(target.dialect).server ? target.display : `${target.host}:${target.port} (${target.display})`;
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
