import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Knex } from 'knex';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { describeTable } from './helpers/schema.js';
import { migrateDown, migrateLatest } from '../src/state/migrate.js';
import { stateTables, type StateTables } from '../src/state/tables.js';
import { MIGRATIONS } from '../migrations/index.js';

/*
 * Migrations are frozen once landed: a database migrated by an earlier text of a file never
 * runs the new text. 0001 and 0003 were edited after they landed (wider watermark columns, the
 * claim index); 0013 brings such a database level.
 */

const LIST = 'test/fixtures/migrations.sha256';

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file, 'utf8').replace(/\r\n/g, '\n')).digest('hex');
}

describe('landed migrations are frozen', () => {
  const listed = new Map(
    fs
      .readFileSync(LIST, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const [hash, name] = l.split(/\s+/);
        return [name!, hash!] as const;
      }),
  );
  const files = fs.readdirSync('migrations').filter((f) => /^\d{4}_.+\.ts$/.test(f)).sort();

  it('every migration file is listed, and the list names no missing file', () => {
    expect(files).toEqual([...listed.keys()].sort());
  });

  it('no listed migration file changed', () => {
    const changed = files.filter((f) => listed.get(f) !== sha256(`migrations/${f}`));
    expect(changed).toEqual([]);
  });

  it('the migration list runs every file, in file order, under the file name', () => {
    expect(MIGRATIONS.map((m) => `${m.name}.ts`)).toEqual(files);
  });
});

/** 0001 and 0003 as they first landed (commit 4e678f7): narrow cursor columns, no claim index. */
async function createAsFirstLanded(knex: Knex, t: StateTables): Promise<void> {
  await knex.schema.createTable(t.watermarks, (tb) => {
    tb.string('kind', 16).primary();
    tb.string('cursor_value', 64).nullable();
    tb.string('cursor_key', 191).nullable();
    tb.bigInteger('last_rescan_at').nullable();
    tb.bigInteger('updated_at').notNullable();
  });
  await knex.schema.createTable(t.syncRecords, (tb) => {
    tb.bigIncrements('id').primary();
    tb.string('kind', 16).notNullable();
    tb.string('source_key', 191).notNullable();
    tb.string('version', 64).notNullable();
    tb.integer('generation').notNullable().defaultTo(0);
    tb.string('operation', 8).notNullable();
    tb.string('idempotency_key', 64).nullable();
    tb.string('status', 12).notNullable();
    tb.integer('attempts').notNullable().defaultTo(0);
    tb.bigInteger('next_attempt_at').notNullable();
    tb.string('lease_owner', 64).nullable();
    tb.bigInteger('lease_until').nullable();
    tb.bigInteger('revokes_id').nullable();
    tb.string('approval_id', 32).nullable();
    tb.integer('feishu_code').nullable();
    tb.text('feishu_msg').nullable();
    tb.string('error_code', 64).nullable();
    tb.text('reasons').nullable();
    tb.text('payload').nullable();
    tb.string('user_id', 128).nullable();
    tb.string('effective_date', 10).nullable();
    tb.bigInteger('created_at').notNullable();
    tb.bigInteger('updated_at').notNullable();
    tb.bigInteger('sent_at').nullable();
    tb.unique(['kind', 'source_key', 'version', 'operation', 'generation'], { indexName: `${t.syncRecords}_version_uq` });
    tb.index(['status', 'next_attempt_at'], `${t.syncRecords}_due_idx`);
    tb.index(['kind', 'source_key', 'id'], `${t.syncRecords}_key_idx`);
  });
}

describe.each(dialectsUnderTest())('0013 brings a database migrated by the first 0001/0003 level on %s', (dialect) => {
  const PREFIX = 'attendance_sync_';
  const t = stateTables(PREFIX);
  let fresh: TestDatabase;
  let old: TestDatabase;
  beforeAll(async () => {
    fresh = await createTestDatabase(dialect, `frozen_new_${dialect}`);
    old = await createTestDatabase(dialect, `frozen_old_${dialect}`);
  });
  afterAll(async () => {
    await fresh?.drop();
    await old?.drop();
  });

  it('the old database lacks the claim index; after migrating it has it, as a fresh database does', async () => {
    await migrateLatest(fresh.db, PREFIX);
    await createAsFirstLanded(old.db, t);
    expect((await describeTable(old.db, t.syncRecords)).indexes.join('\n')).not.toContain('_claim_idx');

    expect(await migrateLatest(old.db, PREFIX)).toEqual(MIGRATIONS.map((m) => m.name));

    const leveled = await describeTable(old.db, t.syncRecords);
    expect(leveled.indexes.join('\n')).toContain(`${t.syncRecords}_claim_idx`);
    expect(leveled).toEqual(await describeTable(fresh.db, t.syncRecords));
    // SQLite does not enforce VARCHAR lengths: the declared type stays, the values fit.
    if (dialect !== 'sqlite') expect(await describeTable(old.db, t.watermarks)).toEqual(await describeTable(fresh.db, t.watermarks));
  });

  it('the leveled watermark holds a cursor value and key longer than the old columns', async () => {
    const long = { kind: 'leave', cursor_value: 'v'.repeat(300), cursor_key: 'k'.repeat(500), last_rescan_at: null, updated_at: Date.now() };
    await old.db(t.watermarks).insert(long);
    expect(await old.db(t.watermarks).where({ kind: 'leave' }).first()).toMatchObject({ cursor_value: long.cursor_value, cursor_key: long.cursor_key });
  });

  it('on a fresh database 0013 changes nothing, and a re-run after rolling it back finds everything in place', async () => {
    const before = await describeTable(fresh.db, t.syncRecords);
    // Undo the migrations from the newest down to 0013, then apply them again.
    const undone: string[] = [];
    while (!undone.includes('0013_level_indexes')) {
      const step = await migrateDown(fresh.db, PREFIX);
      expect(step).toHaveLength(1);
      undone.push(...step);
    }
    expect(await migrateLatest(fresh.db, PREFIX)).toEqual([...undone].reverse());
    expect(await describeTable(fresh.db, t.syncRecords)).toEqual(before);
  });
});
