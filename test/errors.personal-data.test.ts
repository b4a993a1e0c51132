import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { connect } from '../src/db/connect.js';
import { describeError, ERROR_TEXT_MAX, sanitizeErrorText } from '../src/errors.js';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { prepareSample } from './helpers/pipeline.js';
import { CLI, runCli } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { stateTables } from '../src/state/tables.js';

/*
 * Database errors must not carry the values bound into the failing statement (employee
 * numbers, leave reasons) to any place an operator or a log shipper reads: log lines, the
 * runs table, /healthz, `status`. And they stay short, however large the statement.
 */

const t = stateTables('attendance_sync_');
const REASON = 'MEDICAL-chemotherapy-Zhang-Wei-QX7781';
const EMPLOYEE_MARK = 'PZ4419';

function configFile(dir: string, tweak: (raw: any) => void = () => {}): string {
  const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
  raw.sync.schedule = '*/1 * * * * *';
  raw.sync.lock_lease_seconds = 5;
  raw.log = { level: 'debug', format: 'json' };
  tweak(raw);
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, YAML.stringify(raw));
  return file;
}

async function waitFor<T>(what: () => T | undefined | Promise<T | undefined>, ms: number): Promise<T | undefined> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await what();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

function expectClean(text: string, where: string): void {
  expect({ where, reason: text.includes(REASON) }).toEqual({ where, reason: false });
  expect({ where, employee: text.includes(EMPLOYEE_MARK) }).toEqual({ where, employee: false });
}

describe('sanitizeErrorText', () => {
  it('caps the size and keeps the driver message when the statement is huge', () => {
    const sql = `insert into x (a, b) values ${Array.from({ length: 20_000 }, () => '(?, ?)').join(', ')}`;
    const text = sanitizeErrorText(`${sql} - no such column: payload`);
    expect(text.length).toBeLessThanOrEqual(ERROR_TEXT_MAX);
    expect(text).toMatch(/no such column: payload/);
  });

  it('masks the values MySQL and PostgreSQL quote in their own messages', () => {
    expect(sanitizeErrorText(`Duplicate entry '${REASON}' for key 'leave.PRIMARY'`)).not.toContain(REASON);
    expect(sanitizeErrorText(`Incorrect datetime value: '${REASON}' for column 'start_at' at row 1`)).not.toContain(REASON);
    expect(sanitizeErrorText(`invalid input syntax for type integer: "${REASON}"`)).not.toContain(REASON);
    // Identifiers stay readable.
    expect(sanitizeErrorText(`Unknown column 'payload' in 'field list'`)).toBe(`Unknown column 'payload' in 'field list'`);
  });
});

describe.each(dialectsUnderTest())('bound values never reach error text on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let cfg: string;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `errpii_${dialect}`);
    await prepareSample(db, { employees: 10, leaves: 400, overtime: 5, trips: 5, outs: 5, seed: 13, startDate: '2026-03-02', days: 30, now: DateTime.utc().minus({ hours: 2 }) });
    await db.db('leave_requests').update({ reason: REASON });
    const employees = (await db.db('employees').select('id')) as Array<{ id: number }>;
    for (const e of employees) await db.db('employees').where({ id: e.id }).update({ employee_no: `${EMPLOYEE_MARK}${e.id}` });
    // Every plan insert into the sync table fails: its payload column is gone.
    await db.db.schema.alterTable(t.syncRecords, (tb) => tb.renameColumn('payload', 'payload_moved'));
    emu = await startEmulator({ rateLimit: 500 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'errpii-'));
    env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
    cfg = configFile(dir, (raw) => (raw.metrics = { enabled: true, host: '127.0.0.1', port: 0 }));
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a direct failing insert: the error names the problem, not the values', async () => {
    const own = connect(db.url);
    try {
      await own.schema.createTable('pii_probe', (tb) => {
        tb.string('k', 64).primary();
        tb.string('reason', 200);
      });
      await own('pii_probe').insert({ k: REASON, reason: REASON });
      const err = await own('pii_probe')
        .insert(Array.from({ length: 400 }, (_, i) => ({ k: i === 0 ? REASON : `${EMPLOYEE_MARK}-${i}`, reason: REASON })))
        .then(() => undefined, (e: unknown) => e);
      expect(typeof (err as Error)?.message).toBe('string');
      const text = describeError(err);
      expectClean(text, 'describeError');
      expectClean((err as Error).message, 'err.message');
      expectClean(JSON.stringify(err), 'JSON of the error');
      expect(text.length).toBeLessThanOrEqual(ERROR_TEXT_MAX);
      expect(text).toMatch(/unique|duplicate/i);
    } finally {
      await own.destroy();
    }
  });

  it('`once` with a failing plan insert: stderr, the runs table and `status` hold no bound value, errors stay short', async () => {
    const res = await runCli(['--config', cfg, 'once'], { env });
    expect(res.code).toBe(1);
    expectClean(res.stdout + res.stderr, 'once output');
    const lines = res.stderr.split('\n').filter((l) => l.startsWith('{'));
    const finished = lines.map((l) => JSON.parse(l)).find((l) => l.message === 'cycle finished');
    expect(finished?.outcome).toBe('failed');
    expect(String(finished.error)).toMatch(/payload/);
    expect(String(finished.error).length).toBeLessThanOrEqual(ERROR_TEXT_MAX);
    for (const l of lines) expect(l.length).toBeLessThan(20_000);

    const runs = (await db.db(t.runs).select('*')) as Array<{ outcome: string; error: string | null }>;
    const failed = runs.filter((r) => r.outcome === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    for (const r of runs) {
      expectClean(String(r.error ?? ''), 'runs.error');
      expect(String(r.error ?? '').length).toBeLessThanOrEqual(ERROR_TEXT_MAX);
    }
    const status = await runCli(['--config', cfg, 'status'], { env });
    expect(status.stdout).toMatch(/failed/);
    expectClean(status.stdout + status.stderr, 'status');
    const json = await runCli(['--config', cfg, 'status', '--json'], { env });
    expectClean(json.stdout + json.stderr, 'status --json');
  }, 60_000);

  it('`run`: /healthz reports the failure without bound values', async () => {
    const child = spawn(process.execPath, [CLI, '--config', cfg, 'run'], { env: { PATH: process.env.PATH, TZ: 'UTC', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const base = await waitFor(() => /"url":"(http:\/\/127\.0\.0\.1:\d+)\/metrics"/.exec(output)?.[1], 20_000);
      expect(base).toBeDefined();
      const body = await waitFor(async () => {
        const res = await fetch(`${base}/healthz`);
        const text = await res.text();
        return res.status === 503 && /last cycle failed/.test(text) ? text : undefined;
      }, 20_000);
      expect(body).toBeDefined();
      expect(body!).toMatch(/payload/);
      expectClean(body!, '/healthz');
      expect(body!.length).toBeLessThan(4 * ERROR_TEXT_MAX);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expectClean(output, 'run output');
  }, 60_000);
});
