import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { runCli } from './helpers/cli.js';
import { migrateDown, migrateLatest, migrateRollback, migrationStatus, isUpToDate } from '../src/state/migrate.js';
import { stateTables } from '../src/state/tables.js';
import { describeTable } from './helpers/schema.js';
import { MIGRATIONS } from '../migrations/index.js';

const TABLES = ['watermarks', 'records', 'syncRecords', 'runs', 'lock', 'kindState', 'tenant', 'userResolution', 'typeIds', 'lookups', 'statusCounts'] as const;

describe.each(dialectsUnderTest())('state migrations on %s', (dialect) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(dialect, `migrate_${dialect}`);
  });
  afterAll(async () => t?.drop());

  it('creates the state tables, matching the committed schema snapshot', async () => {
    const applied = await migrateLatest(t.db, 'attendance_sync_');
    expect(applied).toEqual(MIGRATIONS.map((m) => m.name));
    expect(applied.slice(0, 5)).toEqual(['0001_watermarks', '0002_records', '0003_sync_records', '0004_runs', '0005_lock']);
    expect(applied).toContain('0008_tenant');
    const names = stateTables('attendance_sync_');
    const schema: Record<string, unknown> = {};
    for (const key of TABLES) {
      expect(await t.db.schema.hasTable(names[key])).toBe(true);
      schema[names[key]] = await describeTable(t.db, names[key]);
    }
    expect(schema).toMatchSnapshot();
    expect(await isUpToDate(t.db, 'attendance_sync_')).toBe(true);
  });

  it('the sync table view shows epoch-ms times as ISO UTC text', async () => {
    const names = stateTables('attendance_sync_');
    const at = Date.UTC(2026, 2, 2, 1, 2, 3, 456);
    await t.db(names.syncRecords).insert({ kind: 'leave', source_key: 'k1', version: 'v1', generation: 0, operation: 'create', status: 'sent', attempts: 1, next_attempt_at: at, created_at: at, updated_at: at + 1000, sent_at: at + 1000 });
    const row = (await t.db(names.syncRecordsView).where({ source_key: 'k1' }).first()) as Record<string, unknown>;
    expect(row).toMatchObject({ created_at_utc: '2026-03-02T01:02:03.456Z', updated_at_utc: '2026-03-02T01:02:04.456Z', sent_at_utc: '2026-03-02T01:02:04.456Z', lease_until_utc: null, status: 'sent' });
    await t.db(names.syncRecords).where({ source_key: 'k1' }).delete();
  });

  it('0006 keeps only current problems invalid: rows of records since fixed, or judged again, become superseded', async () => {
    const names = stateTables('attendance_sync_');
    // Undo the migrations from 0006 on (later ones first), then bring the database level again.
    const from0006 = MIGRATIONS.map((m) => m.name).filter((n) => n >= '0006');
    const undone: string[] = [];
    while (!undone.includes('0006_kind_state')) undone.push(...(await migrateDown(t.db, 'attendance_sync_')));
    expect(undone.sort()).toEqual(from0006);
    const now = Date.now();
    const op = (key: string, version: string) => ({ kind: 'leave', source_key: key, version, generation: 0, operation: 'create', status: 'invalid', attempts: 0, next_attempt_at: now, created_at: now, updated_at: now });
    await t.db(names.syncRecords).insert([op('fixed', 'xa'), op('again', 'xb'), op('again', 'xc'), op('still', 'xd')]);
    const rec = (key: string, state: string) => ({ kind: 'leave', source_key: key, version: null, state, generation: 0, first_seen_at: now, updated_at: now });
    await t.db(names.records).insert([rec('fixed', 'active'), rec('again', 'invalid'), rec('still', 'invalid')]);
    expect(await migrateLatest(t.db, 'attendance_sync_')).toEqual(from0006);
    const rows = (await t.db(names.syncRecords).whereIn('source_key', ['fixed', 'again', 'still']).orderBy('id').select('source_key', 'version', 'status')) as any[];
    expect(rows.map((r) => `${r.source_key}:${r.version}:${r.status}`)).toEqual(['fixed:xa:superseded', 'again:xb:superseded', 'again:xc:invalid', 'still:xd:invalid']);
    await t.db(names.syncRecords).whereIn('source_key', ['fixed', 'again', 'still']).delete();
    await t.db(names.records).whereIn('source_key', ['fixed', 'again', 'still']).delete();
  });

  it('a second run is a no-op', async () => {
    expect(await migrateLatest(t.db, 'attendance_sync_')).toEqual([]);
    expect((await migrationStatus(t.db, 'attendance_sync_')).pending).toEqual([]);
  });

  it('a second prefix lives beside the first without colliding', async () => {
    expect(await migrateLatest(t.db, 'other_')).toHaveLength(MIGRATIONS.length);
    expect(await t.db.schema.hasTable('other_sync_records')).toBe(true);
    await migrateRollback(t.db, 'other_', { all: true });
    expect(await t.db.schema.hasTable('other_sync_records')).toBe(false);
    expect(await t.db.schema.hasTable('attendance_sync_sync_records')).toBe(true);
  });

  it('rollback removes the tables, and migrating again restores them', async () => {
    const undone = await migrateRollback(t.db, 'attendance_sync_', { all: true });
    expect(undone).toHaveLength(MIGRATIONS.length);
    for (const key of TABLES) expect(await t.db.schema.hasTable(stateTables('attendance_sync_')[key])).toBe(false);
    expect(await isUpToDate(t.db, 'attendance_sync_')).toBe(false);
    expect(await migrateLatest(t.db, 'attendance_sync_')).toHaveLength(MIGRATIONS.length);
  });
});

describe.each(dialectsUnderTest())('`attendance-sync migrate` with no config file on %s', (dialect) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(dialect, `migrate_cli_${dialect}`);
  });
  afterAll(async () => t?.drop());

  it('creates the state tables from STATE_DATABASE_URL alone; a second run changes nothing; rollback works', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'migrate-'));
    const env = { STATE_DATABASE_URL: t.url };
    const first = await runCli(['migrate'], { env, cwd });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`applied ${MIGRATIONS.length} migration\\(s\\)`));
    expect(await t.db.schema.hasTable('attendance_sync_sync_records')).toBe(true);
    const second = await runCli(['migrate'], { env, cwd });
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/already up to date/);
    const status = await runCli(['migrate', '--status'], { env, cwd });
    expect(status.stdout).toMatch(/applied\s+0006_kind_state/);
    const back = await runCli(['migrate', '--rollback'], { env, cwd });
    expect(back.code).toBe(0);
    expect(await t.db.schema.hasTable('attendance_sync_sync_records')).toBe(false);
  });
});

describe('`attendance-sync migrate` failures', () => {
  it('exits 2 without any database URL and 1 when the database is unreachable, never printing the password', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'migrate-'));
    const none = await runCli(['migrate'], { cwd });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/state\.url: required/);
    const down = await runCli(['migrate'], { cwd, env: { STATE_DATABASE_URL: 'postgres://sync:Pw-Never-Shown@127.0.0.1:1/state' } });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/ECONNREFUSED/);
    expect(down.stdout + down.stderr).not.toContain('Pw-Never-Shown');
  });
});
