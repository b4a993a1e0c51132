import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { DateTime } from 'luxon';
import type { Knex } from 'knex';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { runCli, type CliResult } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import type { DirectoryUser } from '../src/emulator/options.js';
import type { DialectName } from '../src/db/url.js';
import { derivedUniqId } from '../src/mapping/typeTable.js';

/**
 * The README's mapping-cookbook sections for real HR schemas (Odoo, OrangeHRM, Frappe HRMS),
 * copied out of the README as an operator would, run with `once` through the CLI over the
 * emulator against a schema of that shape. Judged by what the emulator holds (user, start,
 * end, type) against the source rows that are approved.
 */

function cookbookKinds(name: string): Record<string, unknown> {
  const readme = fs.readFileSync('README.md', 'utf8');
  const m = new RegExp(`<!-- cookbook: ${name} -->\\s*\`\`\`yaml\\n([\\s\\S]*?)\`\`\``).exec(readme);
  if (!m) throw new Error(`README has no cookbook block ${name}`);
  return (YAML.parse(m[1]!) as { kinds: Record<string, unknown> }).kinds;
}

const day = (n: number) => DateTime.now().setZone('Asia/Shanghai').minus({ days: n }).toFormat('yyyy-MM-dd');
const shanghai = (utc: string) => DateTime.fromSQL(utc, { zone: 'UTC' }).setZone('Asia/Shanghai').toFormat('yyyy-MM-dd HH:mm:ss');

interface Case {
  name: string;
  dialect: DialectName;
  directory: DirectoryUser[];
  build(db: Knex): Promise<void>;
  /** `user|start|end|uniq_id` of everything Feishu should hold. */
  expected: () => string[];
  /** Rows the first cycle finds invalid (an address Feishu does not know). */
  invalid: number;
}

const CASES: Case[] = [
  {
    name: 'odoo',
    dialect: 'pg',
    invalid: 1,
    directory: [
      { user_id: 'od_ann', email: 'ann@odoo.example' },
      { user_id: 'od_bob', email: 'bob@odoo.example' },
      { user_id: 'od_gone', email: 'gone@odoo.example', resigned: true },
    ],
    async build(db) {
      await db.schema.createTable('hr_employee', (tb) => {
        tb.integer('id').primary();
        tb.text('name');
        tb.text('work_email');
      });
      await db.schema.createTable('hr_leave_type', (tb) => {
        tb.integer('id').primary();
        tb.jsonb('name').notNullable();
        tb.boolean('active').notNullable().defaultTo(true);
        tb.text('request_unit').notNullable();
      });
      await db.schema.createTable('hr_leave', (tb) => {
        tb.integer('id').primary();
        tb.integer('employee_id');
        tb.integer('holiday_status_id');
        tb.timestamp('date_from', { useTz: false });
        tb.timestamp('date_to', { useTz: false });
        tb.float('number_of_days');
        tb.text('private_name').nullable();
        tb.text('state');
        tb.timestamp('write_date', { useTz: false });
      });
      await db('hr_employee').insert([
        { id: 1, name: 'Ann', work_email: 'Ann@odoo.example' },
        { id: 2, name: 'Bob', work_email: 'bob@odoo.example' },
        { id: 3, name: 'Gone', work_email: 'gone@odoo.example' },
        { id: 4, name: 'New', work_email: 'new@odoo.example' },
      ]);
      await db('hr_leave_type').insert([
        { id: 1, name: JSON.stringify({ en_US: 'Paid Time Off', zh_CN: '带薪休假' }), request_unit: 'day' },
        { id: 2, name: JSON.stringify({ en_US: 'Sick Time Off', zh_CN: '病假' }), request_unit: 'hour' },
        { id: 3, name: JSON.stringify({ en_US: 'Archived' }), active: false, request_unit: 'day' },
      ]);
      const w = DateTime.utc().minus({ hours: 1 }).toFormat('yyyy-MM-dd HH:mm:ss');
      await db('hr_leave').insert([
        { id: 1, employee_id: 1, holiday_status_id: 1, date_from: `${day(5)} 01:00:00`, date_to: `${day(4)} 10:00:00`, number_of_days: 2, private_name: 'Family', state: 'validate', write_date: w },
        { id: 2, employee_id: 2, holiday_status_id: 2, date_from: `${day(3)} 06:00:00`, date_to: `${day(3)} 08:00:00`, number_of_days: 0.25, private_name: null, state: 'validate', write_date: w },
        { id: 3, employee_id: 3, holiday_status_id: 1, date_from: `${day(9)} 01:00:00`, date_to: `${day(9)} 10:00:00`, number_of_days: 1, private_name: 'Before leaving', state: 'validate', write_date: w },
        { id: 4, employee_id: 1, holiday_status_id: 1, date_from: `${day(2)} 01:00:00`, date_to: `${day(2)} 10:00:00`, number_of_days: 1, private_name: 'Refused', state: 'refuse', write_date: w },
        { id: 5, employee_id: 4, holiday_status_id: 1, date_from: `${day(2)} 01:00:00`, date_to: `${day(2)} 10:00:00`, number_of_days: 1, private_name: 'New hire', state: 'validate', write_date: w },
      ]);
    },
    expected: () => [
      `od_ann|${shanghai(`${day(5)} 01:00:00`)}|${shanghai(`${day(4)} 10:00:00`)}|1`,
      `od_bob|${shanghai(`${day(3)} 06:00:00`)}|${shanghai(`${day(3)} 08:00:00`)}|2`,
      `od_gone|${shanghai(`${day(9)} 01:00:00`)}|${shanghai(`${day(9)} 10:00:00`)}|1`,
    ],
  },
  {
    name: 'orangehrm',
    dialect: 'mysql',
    invalid: 0,
    directory: [
      { user_id: 'oh_ann', email: 'ann@orange.example' },
      { user_id: 'oh_bob', email: 'bob@orange.example' },
    ],
    async build(db) {
      await db.schema.createTable('hs_hr_employee', (tb) => {
        tb.integer('emp_number').primary();
        tb.string('emp_firstname', 100);
        tb.string('emp_work_email', 50).nullable();
      });
      await db.schema.createTable('ohrm_leave_type', (tb) => {
        tb.integer('id').primary();
        tb.string('name', 50).notNullable();
        tb.tinyint('deleted').notNullable().defaultTo(0);
      });
      await db.schema.createTable('ohrm_leave_request', (tb) => {
        tb.integer('id').primary();
        tb.integer('leave_type_id');
        tb.integer('emp_number');
        tb.date('date_applied');
        tb.text('comments').nullable();
      });
      await db.schema.createTable('ohrm_leave', (tb) => {
        tb.integer('id').primary();
        tb.date('date');
        tb.decimal('length_hours', 6, 2);
        tb.decimal('length_days', 6, 4);
        tb.smallint('status');
        tb.integer('leave_request_id');
        tb.integer('leave_type_id');
        tb.integer('emp_number');
        tb.time('start_time').nullable();
        tb.time('end_time').nullable();
        tb.smallint('duration_type');
      });
      await db('hs_hr_employee').insert([
        { emp_number: 1, emp_firstname: 'Ann', emp_work_email: 'ann@orange.example' },
        { emp_number: 2, emp_firstname: 'Bob', emp_work_email: 'BOB@orange.example' },
      ]);
      await db('ohrm_leave_type').insert([
        { id: 1, name: 'Annual' },
        { id: 2, name: 'Casual' },
        { id: 3, name: 'Old', deleted: 1 },
      ]);
      await db('ohrm_leave_request').insert([
        { id: 1, leave_type_id: 1, emp_number: 1, date_applied: day(10), comments: 'Holiday' },
        { id: 2, leave_type_id: 2, emp_number: 2, date_applied: day(10), comments: null },
        { id: 3, leave_type_id: 2, emp_number: 1, date_applied: day(10), comments: 'Dentist' },
      ]);
      await db('ohrm_leave').insert([
        { id: 1, date: day(6), length_hours: 8, length_days: 1, status: 2, leave_request_id: 1, leave_type_id: 1, emp_number: 1, duration_type: 0 },
        { id: 2, date: day(5), length_hours: 8, length_days: 1, status: 3, leave_request_id: 1, leave_type_id: 1, emp_number: 1, duration_type: 0 },
        { id: 3, date: day(4), length_hours: 4, length_days: 0.5, status: 2, leave_request_id: 2, leave_type_id: 2, emp_number: 2, duration_type: 1 },
        { id: 4, date: day(3), length_hours: 2, length_days: 0.25, status: 2, leave_request_id: 3, leave_type_id: 2, emp_number: 1, start_time: '10:00:00', end_time: '12:00:00', duration_type: 3 },
        { id: 5, date: day(2), length_hours: 8, length_days: 1, status: 0, leave_request_id: 2, leave_type_id: 2, emp_number: 2, duration_type: 0 },
      ]);
    },
    expected: () => [
      `oh_ann|${day(6)} 09:00:00|${day(6)} 18:00:00|1`,
      `oh_ann|${day(5)} 09:00:00|${day(5)} 18:00:00|1`,
      `oh_bob|${day(4)} 09:00:00|${day(4)} 13:00:00|2`,
      `oh_ann|${day(3)} 10:00:00|${day(3)} 12:00:00|2`,
    ],
  },
  {
    name: 'frappe',
    dialect: 'sqlite',
    invalid: 0,
    directory: [
      { user_id: 'fr_ann', mobile: '+8613800000001' },
      { user_id: 'fr_bob', mobile: '+8613800000002' },
    ],
    async build(db) {
      await db.schema.createTable('tabEmployee', (tb) => {
        tb.string('name', 140).primary();
        tb.string('employee_name', 140);
        tb.string('cell_number', 140).nullable();
      });
      await db.schema.createTable('tabLeave Type', (tb) => {
        tb.string('name', 140).primary();
        tb.string('leave_type_name', 140);
      });
      await db.schema.createTable('tabLeave Application', (tb) => {
        tb.string('name', 140).primary();
        tb.string('employee', 140);
        tb.string('leave_type', 140);
        tb.date('from_date');
        tb.date('to_date');
        tb.integer('half_day').defaultTo(0);
        tb.float('total_leave_days');
        tb.text('description').nullable();
        tb.string('status', 20);
        tb.integer('docstatus');
        tb.datetime('modified');
      });
      await db('tabEmployee').insert([
        { name: 'HR-EMP-00001', employee_name: 'Ann', cell_number: '+86 138-0000-0001' },
        { name: 'HR-EMP-00002', employee_name: 'Bob', cell_number: '+8613800000002' },
      ]);
      await db('tabLeave Type').insert([
        { name: 'Casual Leave', leave_type_name: 'Casual Leave' },
        { name: 'Sick Leave', leave_type_name: 'Sick Leave' },
      ]);
      const m = DateTime.now().setZone('Asia/Shanghai').minus({ hours: 1 }).toFormat('yyyy-MM-dd HH:mm:ss');
      await db('tabLeave Application').insert([
        { name: 'HR-LAP-2026-00001', employee: 'HR-EMP-00001', leave_type: 'Casual Leave', from_date: day(6), to_date: day(5), half_day: 0, total_leave_days: 2, description: 'Trip home', status: 'Approved', docstatus: 1, modified: m },
        { name: 'HR-LAP-2026-00002', employee: 'HR-EMP-00002', leave_type: 'Sick Leave', from_date: day(3), to_date: day(3), half_day: 1, total_leave_days: 0.5, description: null, status: 'Approved', docstatus: 1, modified: m },
        { name: 'HR-LAP-2026-00003', employee: 'HR-EMP-00001', leave_type: 'Sick Leave', from_date: day(2), to_date: day(2), half_day: 0, total_leave_days: 1, description: 'Cancelled', status: 'Approved', docstatus: 2, modified: m },
        { name: 'HR-LAP-2026-00004', employee: 'HR-EMP-00002', leave_type: 'Casual Leave', from_date: day(1), to_date: day(1), half_day: 0, total_leave_days: 1, description: 'Draft', status: 'Open', docstatus: 0, modified: m },
      ]);
    },
    expected: () => [
      // Frappe's type names hold spaces: their uniq_ids are derived hashes.
      `fr_ann|${day(6)} 09:00:00|${day(5)} 18:00:00|${derivedUniqId('Casual Leave')}`,
      `fr_bob|${day(3)} 09:00:00|${day(3)} 13:00:00|${derivedUniqId('Sick Leave')}`,
    ],
  },
];

const available = new Set(dialectsUnderTest());

describe.each(CASES.filter((c) => available.has(c.dialect)))('mapping cookbook: $name on $dialect', (c) => {
  let db: TestDatabase;
  let emu: Emulator;
  let dir: string;
  let cli: (...args: string[]) => Promise<CliResult>;

  beforeAll(async () => {
    db = await createTestDatabase(c.dialect, `cookbook_${c.name}`);
    await c.build(db.db);
    emu = await startEmulator({ strict: true, rateLimit: 500, directory: c.directory });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `cookbook-${c.name}-`));
    const raw = {
      feishu: { app_id: '${FEISHU_APP_ID}', app_secret: '${FEISHU_APP_SECRET}', retry_base_ms: 20, retry_max_ms: 100, timeout_ms: 3000 },
      source: { url: '${SOURCE_DATABASE_URL}' },
      log: { level: 'info', format: 'pretty' },
      kinds: cookbookKinds(c.name),
    };
    const cfg = path.join(dir, 'config.yaml');
    fs.writeFileSync(cfg, YAML.stringify(raw));
    const env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
    cli = (...args) => runCli(['--config', cfg, ...args], { env, timeoutMs: 90_000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const held = () =>
    emu
      .ledger()
      .filter((e) => e.status === 2)
      .map((e) => `${e.userId}|${String(e.item.start_time)}|${String(e.item.end_time)}|${String(e.item.uniq_id)}`)
      .sort();

  it('check-config shows the type table, preview the resolved users, once syncs exactly the approved rows', async () => {
    expect((await cli('migrate')).code).toBe(0);
    const check = await cli('check-config');
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/kinds\.leave\.types: \d+ type\(s\) from types_query/);
    expect(check.stdout).toContain('from types_query (uniq_id derived)');
    expect(check.stdout).toContain('resolved through contact/v3/users/batch_get_id');

    const preview = await cli('preview', '--limit', '10');
    expect(preview.code).toBe(0);
    const shown = JSON.parse(preview.stdout) as { leave: Array<{ outcome: string; resolved?: { from: string; user_id: string }; payload?: { user_approval: { user_id: string } } }> };
    const resolved = shown.leave.filter((r) => r.outcome === 'valid');
    expect(resolved.length).toBe(c.expected().length);
    for (const r of resolved) {
      expect(c.directory.map((u) => u.user_id)).toContain(r.resolved?.user_id);
      expect(r.payload?.user_approval.user_id).toBe(r.resolved?.user_id);
    }
    expect(preview.stderr).toContain('type table');
    expect(emu.ledger()).toHaveLength(0); // preview sends nothing

    const once = await cli('once');
    expect(once.code).toBe(0);
    const summary = once.stderr.split('\n').find((l) => l.includes('cycle finished'))!;
    process.stdout.write(`cookbook ${c.name} (${c.dialect}) once: ${summary.trim()}\n`);
    expect(summary).toMatch(/ok in/);
    expect(held()).toEqual(c.expected().sort());
    expect(summary).toContain(`created ${c.expected().length}`);
    expect(summary).toContain(`invalid ${c.invalid}`);
  });

  if (c.name === 'odoo') {
    it('status flags the resigned user; the unknown e-mail is invalid with its reason', async () => {
      const status = await cli('status');
      expect(status.stdout).toMatch(/Resolved users: 3 address\(es\) resolved, 1 not found in Feishu.*1 resigned: od_gone/);
      const json = JSON.parse((await cli('status', '--json')).stdout) as { latestErrors: Array<{ sourceKey: string; message: string }> };
      expect(json.latestErrors.find((e) => e.sourceKey === '5')?.message).toContain('e-mail new@odoo.example not found in Feishu');
    });
  }

  if (c.name === 'orangehrm') {
    it('a cancellation without any timestamp is seen by the rescan', async () => {
      await db.db('ohrm_leave').where({ id: 1 }).update({ status: 0 });
      const res = await cli('once', '--rescan');
      expect(res.code).toBe(0);
      const summary = res.stderr.split('\n').find((l) => l.includes('cycle finished'))!;
      process.stdout.write(`cookbook ${c.name} (${c.dialect}) once --rescan: ${summary.trim()}\n`);
      expect(held()).toHaveLength(3);
      expect(held().some((h) => h.includes(`${day(6)} 09:00:00`))).toBe(false);
    });
  }
});
