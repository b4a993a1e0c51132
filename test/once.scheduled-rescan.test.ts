import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample } from './helpers/pipeline.js';
import { spawn } from 'node:child_process';
import { CLI, runCli, type CliResult } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { firstOccurrence } from '../src/pipeline/rescanDue.js';

const DAY = 86_400_000;

describe('firstOccurrence: when sync.rescan_schedule fired between two instants', () => {
  // The CLI and these tests run with TZ=UTC (pm2's ecosystem file sets it too).
  const at = (iso: string) => DateTime.fromISO(iso, { zone: 'local' }).toMillis();

  it('finds the daily tick inside the interval, and none outside it', () => {
    expect(firstOccurrence('17 3 * * *', at('2026-05-01T02:00:00'), at('2026-05-01T04:00:00'))).toBe(at('2026-05-01T03:17:00'));
    expect(firstOccurrence('17 3 * * *', at('2026-05-01T03:17:00'), at('2026-05-02T03:16:59'))).toBeNull();
    expect(firstOccurrence('17 3 * * *', at('2026-05-01T03:17:00'), at('2026-05-02T03:17:00'))).toBe(at('2026-05-02T03:17:00'));
  });

  it('honours days of the week, seconds fields and rare dates', () => {
    // 2026-05-02 is a Saturday: the next weekday tick is on Monday.
    expect(firstOccurrence('0 6 * * 1-5', at('2026-05-01T07:00:00'), at('2026-05-10T00:00:00'))).toBe(at('2026-05-04T06:00:00'));
    expect(firstOccurrence('*/20 * * * * *', at('2026-05-01T07:00:01'), at('2026-05-01T07:01:00'))).toBe(at('2026-05-01T07:00:20'));
    expect(firstOccurrence('0 0 29 2 *', at('2026-03-01T00:00:00'), at('2028-03-01T00:00:00'))).toBe(at('2028-02-29T00:00:00'));
    expect(firstOccurrence('0 0 29 2 *', at('2026-03-01T00:00:00'), at('2027-03-01T00:00:00'))).toBeNull();
  });

  it('searches a long interval day by day, and an interval of years counts as due', () => {
    expect(firstOccurrence('*/5 0-5 31 12 *', at('2026-01-01T00:00:00'), at('2026-12-30T00:00:00'))).toBeNull();
    expect(firstOccurrence('*/5 0-5 31 12 *', at('2026-01-01T00:00:00'), at('2027-01-01T00:00:00'))).toBe(at('2026-12-31T00:00:00'));
    expect(firstOccurrence('0 0 29 2 1', at('2026-01-01T00:00:00'), at('2036-01-01T00:00:00'))).not.toBeNull();
  });
});

/*
 * A source without a change timestamp (OrangeHRM-like): new rows come by id, status changes
 * only by a rescan. A cron-driven `once` (system cron, a Kubernetes CronJob) rescans when
 * sync.rescan_schedule fired since the last rescan, exactly as `run` would at that tick.
 */
describe.each(dialectsUnderTest())('cron-driven once on an id-cursor source (%s)', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  let dir: string;
  let cli: (...args: string[]) => Promise<CliResult>;
  let cfgFile: string;
  let cliEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    db = await createTestDatabase(dialect, `oncerescan_${dialect}`);
    const today = DateTime.now().setZone('Asia/Shanghai').startOf('day');
    // 150 rows: the changed ones lie far below the id lookback window (the last 100 ids).
    await prepareSample(db, { employees: 10, leaves: 150, overtime: 0, trips: 0, outs: 0, seed: 33, approvedShare: 0.7, startDate: today.minus({ days: 20 }).toFormat('yyyy-MM-dd'), days: 30 });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oncerescan-'));
    const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.postgres.yaml', 'utf8'));
    raw.feishu.retry_base_ms = 20;
    raw.feishu.retry_max_ms = 100;
    raw.feishu.rate_limit = 1000;
    raw.log = { level: 'info', format: 'json' };
    raw.kinds = { leave: raw.kinds.leave };
    raw.kinds.leave.cursor = { mode: 'id' };
    // Daily, half a day away from now: no tick falls inside the test by itself.
    const tick = DateTime.utc().plus({ hours: 12 });
    raw.sync.rescan_schedule = `${tick.minute} ${tick.hour} * * *`;
    const cfg = path.join(dir, 'config.yaml');
    fs.writeFileSync(cfg, YAML.stringify(raw));
    const env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
    cli = (...args) => runCli(['--config', cfg, ...args], { env, timeoutMs: 90_000 });
    cfgFile = cfg;
    cliEnv = env;
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const diff = async () => diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()));
  const inSync = { missing: 0, duplicated: 0, unexpected: 0 };
  /** A day passes: the stored times of the last rescan and of every cycle move back by two days. */
  const dayPasses = async () => {
    await db.db('attendance_sync_runs').update({ started_at: db.db.raw('started_at - ?', [2 * DAY]) });
    await db.db('attendance_sync_watermarks').whereNotNull('last_rescan_at').update({ last_rescan_at: db.db.raw('last_rescan_at - ?', [2 * DAY]) });
  };
  const once = async () => {
    const r = await cli('once');
    expect(r.stderr).not.toMatch(/"level":"error"/);
    expect(r.code).toBe(0);
    return r;
  };
  const rescanned = (r: CliResult) => /rescan due by sync\.rescan_schedule/.test(r.stdout + r.stderr);

  it('sees an approval and a cancellation once the schedule is due, and not before', async () => {
    const first = await once();
    expect(rescanned(first)).toBe(false); // the first cycle reads every row anyway
    expect(await diff()).toEqual(inSync);

    const low = (status: string) => db.db('leave_requests').where({ status }).whereNull('deleted_at').orderBy('id').first('id');
    const pending = (await low('pending')) as { id: number };
    const approved = (await low('approved')) as { id: number };
    expect(Number(pending.id)).toBeLessThan(50);
    expect(Number(approved.id)).toBeLessThan(50);
    // No timestamp moves: the source has none that the worker could trust.
    await db.db('leave_requests').where({ id: pending.id }).update({ status: 'approved' });
    await db.db('leave_requests').where({ id: approved.id }).update({ status: 'cancelled' });

    // Minutes later: no tick since the first cycle, so no rescan (as `run` would not either).
    const soon = await once();
    expect(rescanned(soon)).toBe(false);
    expect(await diff()).toEqual({ missing: 1, duplicated: 0, unexpected: 1 });

    // The next cron-driven once after the tick rescans, and says so.
    await dayPasses();
    const due = await once();
    expect(rescanned(due)).toBe(true);
    expect(await diff()).toEqual(inSync);

    // The rescan was stored: the following once has nothing due.
    await db.db('leave_requests').where({ id: pending.id }).update({ status: 'cancelled' });
    const after = await once();
    expect(rescanned(after)).toBe(false);
    expect(await diff()).toEqual({ missing: 0, duplicated: 0, unexpected: 1 });
    await dayPasses();
    expect(rescanned(await once())).toBe(true);
    expect(await diff()).toEqual(inSync);
  });

  it('run makes up a tick it missed while it was down, on its first cycle', async () => {
    const row = (await db.db('leave_requests').where({ status: 'cancelled' }).orderBy('id').first('id')) as { id: number };
    await db.db('leave_requests').where({ id: row.id }).update({ status: 'approved' });
    await dayPasses();
    const before = await diff();
    expect(before.missing).toBe(1);
    const child = spawn(process.execPath, [CLI, '--config', cfgFile, 'run'], { env: { PATH: process.env.PATH, TZ: 'UTC', NODE_ENV: 'test', ...cliEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const end = Date.now() + 60_000;
      while (Date.now() < end && !/"message":"cycle finished"/.test(out)) await new Promise((r) => setTimeout(r, 200));
      expect(out).toMatch(/rescan due by sync\.rescan_schedule/);
      expect(await diff()).toEqual(inSync);
    } finally {
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    }
  }, 90_000);

  it('--no-rescan skips a due rescan; --rescan forces one', async () => {
    await dayPasses();
    const skipped = await cli('once', '--no-rescan');
    expect(skipped.code).toBe(0);
    expect(rescanned(skipped)).toBe(false);
    const forced = await cli('once', '--rescan');
    expect(forced.code).toBe(0);
    expect(rescanned(forced)).toBe(false); // asked for, not scheduled
    const last = (await db.db('attendance_sync_watermarks').where({ kind: 'leave' }).first('last_rescan_at')) as { last_rescan_at: number | string };
    expect(Date.now() - Number(last.last_rescan_at)).toBeLessThan(60_000);
  });
});
