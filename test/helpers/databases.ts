import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { connect, type Knex } from '../../src/db/connect.js';
import { ADMIN_URLS, createScratchDatabase } from './scratch.js';
import type { DialectName } from '../../src/db/url.js';

/**
 * Throw-away databases for tests. Every suite gets a database of its own (named from the
 * suite and a random suffix), so PostgreSQL, MariaDB and SQLite suites never collide.
 *
 * The servers are expected on 127.0.0.1 (see README: Development). A server that can't be
 * reached fails the suite: database suites never skip silently. Outside CI a developer may
 * opt out explicitly with ATTENDANCE_SYNC_TEST_SKIP=pg,mysql.
 */
export { ADMIN_URLS };

export const ALL_DIALECTS: readonly DialectName[] = ['pg', 'mysql', 'sqlite'];

export function dialectsUnderTest(): DialectName[] {
  const skip = process.env.CI === 'true' ? [] : (process.env.ATTENDANCE_SYNC_TEST_SKIP ?? '').split(',').map((s) => s.trim());
  return ALL_DIALECTS.filter((d) => !skip.includes(d));
}

export interface TestDatabase {
  readonly dialect: DialectName;
  /** URL of the throw-away database. */
  readonly url: string;
  /** A knex handle on it (closed by `drop`). */
  readonly db: Knex;
  drop(): Promise<void>;
}

function uniqueName(label: string): string {
  const clean = label.toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 30);
  return `as_${clean}_${crypto.randomBytes(4).toString('hex')}`;
}

export async function createTestDatabase(dialect: DialectName, label: string): Promise<TestDatabase> {
  const name = uniqueName(label);
  if (dialect === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attendance-sync-'));
    const file = path.join(dir, `${name}.sqlite`);
    const url = `sqlite:${file}`;
    const db = connect(url);
    return {
      dialect,
      url,
      db,
      async drop() {
        await db.destroy();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  return createScratchDatabase(dialect, label);
}
