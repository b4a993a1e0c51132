import crypto from 'node:crypto';
import { connect, type Knex } from '../../src/db/connect.js';
import type { DialectName } from '../../src/db/url.js';

export type ServerDialect = Exclude<DialectName, 'sqlite'>;

/** Where throw-away databases are created (tests, the crash test, the benchmark). */
export const ADMIN_URLS: Readonly<Record<ServerDialect, string>> = {
  pg: process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  mysql: process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test',
};

/** A database on a local server that a run owns: the sample HR tables and the state tables live in it. */
export interface ChaosDatabase {
  readonly dialect: DialectName;
  readonly url: string;
  readonly db: Knex;
}

export interface ScratchDatabase extends ChaosDatabase {
  drop(): Promise<void>;
}

/** Create an empty database on the local server; `drop` removes it (and closes `db`). */
export async function createScratchDatabase(dialect: ServerDialect, label = 'chaos', o: { poolMax?: number } = {}): Promise<ScratchDatabase> {
  const name = `as_${label.replace(/[^a-z0-9]+/gi, '_').toLowerCase().slice(0, 24)}_${crypto.randomBytes(4).toString('hex')}`;
  const adminUrl = ADMIN_URLS[dialect];
  const admin = connect(adminUrl, { poolMax: 1 });
  try {
    await admin.raw(dialect === 'pg' ? `CREATE DATABASE "${name}"` : `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } catch (err) {
    throw new Error(`cannot create a ${dialect} database through ${adminUrl}: ${(err as Error).message}. Is the server running? (README: Development)`);
  } finally {
    await admin.destroy();
  }
  const url = adminUrl.replace(/\/[^/]*$/, `/${name}`);
  const db = connect(url, { poolMax: o.poolMax ?? 4 });
  return {
    dialect,
    url,
    db,
    async drop() {
      await db.destroy();
      const admin2 = connect(adminUrl, { poolMax: 1 });
      try {
        await admin2.raw(dialect === 'pg' ? `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)` : `DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await admin2.destroy();
      }
    },
  };
}
