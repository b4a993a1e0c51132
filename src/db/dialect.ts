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
