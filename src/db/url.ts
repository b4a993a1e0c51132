import path from 'node:path';
import { ConfigError } from '../errors.js';
import { parseTls, type TlsSpec } from './tls.js';
import { dialectFor, dialectForScheme } from './dialect.js';

export type { DialectName } from './dialect.js';
import type { DialectName } from './dialect.js';

/** A database URL taken apart; `toString()` never shows the password. */
export interface DatabaseTarget {
  readonly dialect: DialectName;
  /** postgres / mysql: host, port, user, password, database; sqlite: filename. */
  readonly host?: string;
  readonly port?: number;
  readonly user?: string;
  readonly password?: string;
  readonly database?: string;
  readonly filename?: string;
  readonly params: Readonly<Record<string, string>>;
  /** TLS from the query parameters (sslmode… on PostgreSQL, ssl-mode… on MySQL); sqlite: disable. */
  readonly tls: TlsSpec;
  /** The URL with the password masked, safe for logs and reports. */
  readonly display: string;
}

/**
 * Accepted forms:
 *   postgres://user:pass@host:5432/db   (also postgresql://)
 *   mysql://user:pass@host:3306/db      (also mariadb://)
 *   sqlite:./data/hr.sqlite, sqlite:/var/lib/sync/state.sqlite, sqlite::memory:
 */
export function parseDatabaseUrl(raw: string, field = 'url'): DatabaseTarget {
  const value = raw.trim();
  if (/^sqlite:/i.test(value)) {
    let file = value.slice('sqlite:'.length);
    if (file.startsWith('//')) file = file.slice(2); // sqlite:///abs/path
    if (!file) throw new ConfigError([`${field}: sqlite URL needs a file path, e.g. sqlite:./data/hr.sqlite`]);
    const filename = file === ':memory:' ? file : path.resolve(file);
    return { dialect: 'sqlite', filename, params: {}, tls: { mode: 'disable' }, display: `sqlite:${file}` };
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError([`${field}: not a valid database URL (expected postgres://…, mysql://… or sqlite:PATH)`]);
  }
  const scheme = url.protocol.replace(/:$/, '').toLowerCase();
  const dialect = dialectForScheme(scheme)?.name;
  if (!dialect || !dialectFor(dialect).server) throw new ConfigError([`${field}: unsupported scheme "${scheme}:" (use postgres://, mysql:// or sqlite:)`]);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!database) throw new ConfigError([`${field}: the URL names no database (…/DATABASE)`]);
  const params: Record<string, string> = {};
  url.searchParams.forEach((v, k) => (params[k] = v));
  const tls = parseTls(dialectFor(dialect).tlsUrl!, params, field);
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  const masked = new URL(url.toString());
  if (masked.password) masked.password = '***';
  // The passphrase of a client key is as secret as the password.
  for (const k of ['sslpassword', 'ssl-passphrase']) if (masked.searchParams.has(k)) masked.searchParams.set(k, '***');
  return {
    dialect,
    host: url.hostname || '127.0.0.1',
    port: url.port ? Number(url.port) : dialectFor(dialect).defaultPort!,
    user: url.username ? decodeURIComponent(url.username) : undefined,
    password,
    database,
    params,
    tls,
    display: masked.toString(),
  };
}
