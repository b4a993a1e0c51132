import { DateTime } from 'luxon';
import type { Knex } from 'knex';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { resolveConfig } from '../src/config/load.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { migrateLatest } from '../src/state/migrate.js';
import { stateTables } from '../src/state/tables.js';
import { derivedUniqId, describeTypeTable, loadTypeTable } from '../src/mapping/typeTable.js';
import type { DialectName } from '../src/db/url.js';

/**
 * `types_query`: the leave types come from the HR database's own table (Odoo's jsonb
 * translations on PostgreSQL, OrangeHRM's ohrm_leave_type on MariaDB, Frappe's
 * `tabLeave Type` on SQLite), YAML entries override them, and a derived uniq_id never
 * changes for a code once used.
 */
const T = stateTables('attendance_sync_');

interface Shape {
  /** The three type codes as the leave rows hold them. */
  codes: [string | number, string | number, string | number];
  createTypes(db: Knex): Promise<void>;
  addType(db: Knex, n: 0 | 1 | 2): Promise<void>;
  query: string;
  /** Names Feishu should get for the first type. */
  firstNames: Record<string, string>;
}

const SHAPES: Record<DialectName, Shape> = {
  pg: {
    codes: [1, 2, 3],
    async createTypes(db) {
      await db.schema.createTable('hr_leave_type', (tb) => {
        tb.integer('id').primary();
        tb.jsonb('name').notNullable();
        tb.boolean('active').notNullable().defaultTo(true);
      });
    },
    async addType(db, n) {
      const names = [
        { en_US: 'Paid Time Off', zh_CN: '带薪休假', zh_TW: '帶薪休假' },
        { en_US: 'Sick Time Off', zh_CN: '病假' },
        { en_US: 'Compensatory Days', ja_JP: '代休' },
      ][n];
      await db('hr_leave_type').insert({ id: n + 1, name: JSON.stringify(names) });
    },
    query: 'SELECT id AS code, name AS names FROM hr_leave_type WHERE active',
    firstNames: { ch: '带薪休假', en: 'Paid Time Off' },
  },
  mysql: {
    codes: [1, 2, 3],
    async createTypes(db) {
      await db.schema.createTable('ohrm_leave_type', (tb) => {
        tb.integer('id').primary();
        tb.string('name', 50).notNullable();
        tb.tinyint('deleted').notNullable().defaultTo(0);
      });
    },
    async addType(db, n) {
      await db('ohrm_leave_type').insert({ id: n + 1, name: ['Annual', 'Sick', 'Compensatory'][n] });
    },
    query: 'SELECT id AS code, name AS name_en FROM ohrm_leave_type WHERE deleted = 0',
    firstNames: { en: 'Annual' },
  },
  sqlite: {
    codes: ['Casual Leave', 'Sick Leave', 'Compensatory Off'],
    async createTypes(db) {
      await db.schema.createTable('tabLeave Type', (tb) => {
        tb.string('name', 140).primary();
        tb.string('leave_type_name', 140).notNullable();
      });
    },
    async addType(db, n) {
      const name = ['Casual Leave', 'Sick Leave', 'Compensatory Off'][n]!;
      await db('tabLeave Type').insert({ name, leave_type_name: name });
    },
    query: 'SELECT name AS code, leave_type_name AS name_en FROM "tabLeave Type"',
    firstNames: { en: 'Casual Leave' },
  },
};

describe('derived uniq_id', () => {
  it('is the code when it fits, else a 13-character hash, and never varies', () => {
    expect(derivedUniqId('ANNUAL')).toBe('ANNUAL');
    expect(derivedUniqId('12')).toBe('12');
    for (const code of ['Casual Leave', '年假', 'a-very-long-leave-code']) {
      const id = derivedUniqId(code);
      expect(id).toMatch(/^t[0-9a-f]{12}$/);
      expect(derivedUniqId(code)).toBe(id);
    }
    expect(derivedUniqId('Casual Leave')).not.toBe(derivedUniqId('Casual leave'));
  });
});

describe.each(dialectsUnderTest())('types_query on %s', (dialect) => {
  const shape = SHAPES[dialect];
  let db: TestDatabase;
  let emu: Emulator;
  let nextId = 1;
  const day = DateTime.now().setZone('UTC').minus({ days: 2 }).startOf('day');

  async function addLeave(code: string | number): Promise<number> {
    const id = nextId++;
    const d = day.minus({ days: id });
    await db.db('leaves').insert({
      id,
      emp: `e${id}`,
      type_code: code,
      date_from: d.set({ hour: 9 }).toFormat('yyyy-MM-dd HH:mm:ss'),
      date_to: d.set({ hour: 12 }).toFormat('yyyy-MM-dd HH:mm:ss'),
      write_date: DateTime.now().setZone('UTC').minus({ minutes: 30 }).toFormat('yyyy-MM-dd HH:mm:ss'),
    });
    return id;
  }

  beforeAll(async () => {
    db = await createTestDatabase(dialect, `typesq_${dialect}`);
    await shape.createTypes(db.db);
    await shape.addType(db.db, 0);
    await shape.addType(db.db, 1);
    await db.db.schema.createTable('leaves', (tb) => {
      tb.integer('id').primary();
      tb.string('emp', 20).notNullable();
      if (typeof shape.codes[0] === 'number') tb.integer('type_code').notNullable();
      else tb.string('type_code', 140).notNullable();
      tb.datetime('date_from').notNullable();
      tb.datetime('date_to').notNullable();
      tb.datetime('write_date').notNullable();
    });
    await migrateLatest(db.db, 'attendance_sync_');
    emu = await startEmulator({ strict: true, rateLimit: 500 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  function config() {
    return resolveConfig(
      {
        feishu: { app_id: 'x', app_secret: 'y', retry_base_ms: 20, retry_max_ms: 100, timeout_ms: 3000, time_zone: 'UTC' },
        source: { url: db.url, time_zone: 'UTC' },
        sync: { lookback_seconds: 0 },
        log: { level: 'warn', format: 'json' },
        kinds: {
          leave: {
            source: { table: 'leaves' },
            key: 'id',
            cursor: { mode: 'updated_at', column: 'write_date' },
            fields: { user_id: 'emp', start_time: 'date_from', end_time: 'date_to', type: 'type_code', unit: { value: 2 }, reason: { value: 'leave' } },
            types_query: shape.query,
            // The YAML entry for the second code overrides its row.
            types: { [String(shape.codes[1])]: { uniq_id: 'SICK', names: { ch: '病假', en: 'Sick' } } },
          },
        },
      },
      { env: { FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret } },
    );
  }

  const item = (emp: string) => emu.ledger().find((e) => e.userId === emp && e.status === 2)?.item as { uniq_id: string; i18n_names: Record<string, string> } | undefined;

  it('maps codes through the table, YAML first; a type added later makes its invalid records valid; a used uniq_id never changes', async () => {
    const p = testPipeline(db, config());
    const a = await addLeave(shape.codes[0]);
    const b = await addLeave(shape.codes[1]);
    const c = await addLeave(shape.codes[2]);

    const first = await runCycle(p.deps);
    expect(first.outcome).toBe('ok');
    const firstCode = String(shape.codes[0]);
    expect(item(`e${a}`)?.uniq_id).toBe(derivedUniqId(firstCode));
    expect(item(`e${a}`)?.i18n_names).toMatchObject(shape.firstNames);
    expect(item(`e${b}`)).toMatchObject({ uniq_id: 'SICK', i18n_names: { ch: '病假', en: 'Sick' } });
    expect(item(`e${c}`)).toBeUndefined();
    const rc = (await db.db(T.records).where({ kind: 'leave', source_key: String(c) }).first()) as { state: string; reasons: string };
    expect(rc.state).toBe('invalid');
    expect(rc.reasons).toContain('unknown type code');

    // The derived uniq_id is kept in the state DB.
    const stored = (await db.db(T.typeIds).where({ kind: 'leave' }).select('code', 'uniq_id')) as Array<{ code: string; uniq_id: string }>;
    expect(stored).toEqual([{ code: firstCode, uniq_id: derivedUniqId(firstCode) }]);

    // HR adds the third type: the invalid record is judged again and sent, nobody edits the YAML.
    await shape.addType(db.db, 2);
    await runCycle(p.deps);
    expect(item(`e${c}`)?.uniq_id).toBe(derivedUniqId(String(shape.codes[2])));

    // A uniq_id given to a code stays its uniq_id (here: one stored under an earlier rule).
    await db.db(T.typeIds).where({ kind: 'leave', code: firstCode }).update({ uniq_id: 'keep01' });
    const a2 = await addLeave(shape.codes[0]);
    await runCycle(p.deps);
    expect(item(`e${a2}`)?.uniq_id).toBe('keep01');

    // The resolved table as check-config and preview show it.
    const table = await loadTypeTable({ source: db.db, state: db.db, t: T, persist: false }, 'leave', config().kinds.leave!);
    const lines = describeTypeTable(table);
    expect(lines).toHaveLength(3);
    expect(lines.find((l) => l.startsWith(`${firstCode} → keep01`))).toContain('types_query (uniq_id derived)');
    expect(lines.find((l) => l.startsWith(`${String(shape.codes[1])} → SICK`))).toContain('from types');
  });
});
