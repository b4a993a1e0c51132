import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { baseRawConfig } from './helpers/config.js';
import { runCli } from './helpers/cli.js';

/** A small legacy schema: employees + leave requests, the cursor column indexed. */
async function createLegacy(t: TestDatabase): Promise<void> {
  await t.db.schema.createTable('employees', (tb) => {
    tb.integer('id').primary();
    tb.string('employee_no', 20).notNullable();
  });
  await t.db.schema.createTable('leave_requests', (tb) => {
    tb.integer('id').primary();
    tb.integer('employee_id').notNullable();
    tb.string('leave_type_code', 16);
    tb.string('unit', 16);
    tb.decimal('duration', 6, 2);
    tb.string('start_at', 32);
    tb.string('end_at', 32);
    tb.text('reason');
    tb.string('status', 16);
    tb.string('deleted_at', 32);
    tb.string('updated_at', 32).notNullable();
    tb.index(['updated_at', 'id'], 'leave_requests_updated_idx');
  });
  await t.db.schema.createTable('out_requests', (tb) => {
    tb.integer('id').primary();
    tb.string('updated_at', 32);
  });
}

function writeConfig(t: TestDatabase, mutate: (raw: Record<string, any>) => void): string {
  const raw = baseRawConfig();
  raw.source.url = t.url;
  raw.kinds.leave.source = {
    query: 'SELECT r.*, e.employee_no FROM leave_requests r JOIN employees e ON e.id = r.employee_id',
  };
  mutate(raw);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'check-')), 'config.yaml');
  fs.writeFileSync(file, YAML.stringify(raw));
  return file;
}

describe.each(dialectsUnderTest())('check-config on %s', (dialect) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(dialect, `check_${dialect}`);
    await createLegacy(t);
  });
  afterAll(async () => t?.drop());

  it('passes on a correct mapping (query source with a join) and exits 0', async () => {
    const res = await runCli(['check-config', '--config', writeConfig(t, () => {})]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/ok\s+source database: connected/);
    expect(res.stdout).toMatch(/kinds\.leave\.source: the source query: all \d+ mapped columns exist/);
    expect(res.stdout).toMatch(/WARN\s+kinds\.leave\.cursor\.column: cannot check the index of a query source/);
    expect(res.stdout).toMatch(/state tables: missing: run `npx attendance-sync migrate`/);
    expect(res.stdout).toMatch(/configuration OK/);
  });

  it('names the config path of a wrong column name and exits 2', async () => {
    const res = await runCli(['check-config', '--config', writeConfig(t, (r) => (r.kinds.leave.fields.start_time = 'start_tme'))]);
    expect(res.code).toBe(2);
    expect(res.stdout).toMatch(/ERROR\s+kinds\.leave\.fields\.start_time: column "start_tme" not found in the source query/);
    expect(res.stdout).toMatch(/configuration has 1 error/);
  });

  it('checks the cursor index of a table source', async () => {
    const res = await runCli([
      'check-config',
      '--config',
      writeConfig(t, (r) => {
        r.kinds.leave.source = { table: 'leave_requests' };
        r.kinds.leave.fields.user_id = 'employee_id';
        r.kinds.out = {
          source: { table: 'out_requests' },
          key: 'id',
          fields: { user_id: 'id', start_time: 'updated_at', end_time: 'updated_at', type: 'id', reason: { value: 'x' } },
          types: { A: { uniq_id: 'A', names: { ch: '外出' } } },
        };
      }),
    ]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/ok\s+kinds\.leave\.cursor\.column: "updated_at" is indexed/);
    expect(res.stdout).toMatch(/WARN\s+kinds\.out\.cursor\.column: "updated_at" leads no index of out_requests/);
  });

  it('reports a missing table with the path of its source', async () => {
    const res = await runCli(['check-config', '--config', writeConfig(t, (r) => (r.kinds.leave.source = { table: 'leave_requestz' }))]);
    expect(res.code).toBe(2);
    expect(res.stdout).toMatch(/ERROR\s+kinds\.leave\.source: table leave_requestz cannot be read/);
  });
});

describe('check-config without a usable configuration', () => {
  it('exits 2 naming every bad path, without a stack trace', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'check-'));
    const raw = baseRawConfig();
    delete raw.kinds.leave.fields.start_time;
    raw.kinds.leave.feilds = {};
    fs.writeFileSync(path.join(dir, 'c.yaml'), YAML.stringify(raw));
    const res = await runCli(['check-config', '--config', path.join(dir, 'c.yaml')]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/kinds\.leave\.fields\.start_time: required/);
    expect(res.stderr).toMatch(/kinds\.leave\.feilds: unknown key/);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('never prints the DB password when the database is unreachable', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'check-'));
    const raw = baseRawConfig();
    raw.source.url = 'postgres://hr:Sup3rSecretPw@127.0.0.1:1/hr';
    fs.writeFileSync(path.join(dir, 'c.yaml'), YAML.stringify(raw));
    const res = await runCli(['check-config', '--config', path.join(dir, 'c.yaml')]);
    expect(res.code).toBe(2);
    expect(res.stdout).toMatch(/ERROR\s+source database: cannot connect to postgres:\/\/hr:\*\*\*@127\.0\.0\.1:1\/hr/);
    expect(res.stdout + res.stderr).not.toContain('Sup3rSecretPw');
  });

  it('warns on a plain http:// Feishu base URL to anything but loopback', async () => {
    const db = await createTestDatabase('sqlite', 'check_http');
    try {
      await createLegacy(db);
      const check = async (baseUrl: string) => {
        const res = await runCli(['check-config', '--config', writeConfig(db, (raw) => (raw.feishu.base_url = baseUrl))]);
        expect(res.code).toBe(0);
        return res.stdout;
      };
      expect(await check('http://open.feishu.example.com')).toMatch(/WARN\s+feishu\.base_url: plain HTTP to open\.feishu\.example\.com: .*use https:\/\//);
      expect(await check('http://10.0.0.5:8080')).toMatch(/WARN\s+feishu\.base_url: plain HTTP to 10\.0\.0\.5:8080/);
      for (const ok of ['https://open.feishu.cn', 'http://127.0.0.1:9000', 'http://localhost:9000', 'http://[::1]:9000']) expect(await check(ok)).not.toMatch(/feishu\.base_url/);
    } finally {
      await db.drop();
    }
  }, 60_000);
  it('warns that employee_no can be reused, and names a failing types_query', async () => {
    const db = await createTestDatabase('sqlite', 'check_empno');
    try {
      await createLegacy(db);
      const run = (mutate: (raw: Record<string, any>) => void) => runCli(['check-config', '--config', writeConfig(db, mutate)]);
      const empNo = await run((raw) => (raw.feishu.employee_type = 'employee_no'));
      expect(empNo.code).toBe(0);
      expect(empNo.stdout).toMatch(/WARN\s+feishu\.employee_type: employee_no \(工号\) can be reused: a new hire may receive a departed employee's number/);
      expect((await run(() => {})).stdout).not.toMatch(/feishu\.employee_type/);
      const badQuery = await run((raw) => (raw.kinds.leave.types_query = 'SELECT code FROM no_such_types'));
      expect(badQuery.code).toBe(2);
      expect(badQuery.stdout).toMatch(/ERROR\s+kinds\.leave\.types_query: kinds\.leave\.types_query failed: .*no_such_types/);
    } finally {
      await db.drop();
    }
  }, 60_000);
});
