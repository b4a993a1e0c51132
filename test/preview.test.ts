import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { prepareSample } from './helpers/pipeline.js';
import { runCli } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { exclusiveUpperBound } from '../src/source/window.js';

const EXAMPLE = { pg: 'postgres', mysql: 'mysql', sqlite: 'sqlite' } as const;

describe('the upper bound of an effective-date window', () => {
  it('is the next day, or none when that cannot be written as a date', () => {
    expect(exclusiveUpperBound('2026-03-31')).toBe('2026-04-01');
    expect(exclusiveUpperBound('9999-12-31')).toBeNull();
    expect(exclusiveUpperBound(undefined)).toBeNull();
  });
});

describe.each(dialectsUnderTest())('preview on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  let cfg: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `preview_${dialect}`);
    await prepareSample(db, { employees: 10, leaves: 40, overtime: 5, trips: 5, outs: 5, seed: 12, startDate: '2026-03-02', days: 20, now: DateTime.utc().minus({ hours: 2 }) });
    emu = await startEmulator({ strict: true, rateLimit: 500 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'preview-'));
    const raw = YAML.parse(fs.readFileSync(`config/attendance-sync.example.${EXAMPLE[dialect]}.yaml`, 'utf8'));
    raw.feishu.retry_base_ms = 20;
    raw.log = { level: 'warn', format: 'json' };
    cfg = path.join(dir, 'config.yaml');
    fs.writeFileSync(cfg, YAML.stringify(raw));
    env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('--from DATE returns the rows whose effective date is on or after it', async () => {
    const from = '2026-03-12';
    const wanted = (await db.db('leave_requests').where('start_at', '>=', `${from} 00:00:00`).orderBy('id').pluck('id')).map(String);
    expect(wanted.length).toBeGreaterThan(3);
    const res = await runCli(['--config', cfg, 'preview', '--kind', 'leave', '--from', from, '--limit', '500'], { env });
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.leave.map((r: any) => String(r.key))).toEqual(wanted);
    expect(res.stderr).toMatch(new RegExp(`preview leave: ${wanted.length} row\\(s\\) with an effective date \\(start_at\\) from ${from}: \\d+ valid`));
  });

  it('an empty preview says why', async () => {
    const late = await runCli(['--config', cfg, 'preview', '--kind', 'leave', '--from', '2099-01-01'], { env });
    expect(late.code).toBe(0);
    expect(JSON.parse(late.stdout).leave).toEqual([]);
    expect(late.stderr).toMatch(/preview leave: nothing to preview: no rows with an effective date \(start_at\) from 2099-01-01/);

    expect((await runCli(['--config', cfg, 'once'], { env })).code).toBe(0);
    const caughtUp = await runCli(['--config', cfg, 'preview', '--kind', 'leave'], { env });
    expect(caughtUp.code).toBe(0);
    expect(JSON.parse(caughtUp.stdout).leave).toEqual([]);
    expect(caughtUp.stderr).toMatch(/preview leave: nothing to preview: no rows changed after the watermark \(/);
  });
});
