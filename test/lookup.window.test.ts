import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { prepareSample } from './helpers/pipeline.js';
import { runCli } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { cancelRows, sampleNow, sqlTime } from '../src/sample/index.js';
import { lookupWindows } from '../src/feishu/lookup.js';
import { FeishuClient } from '../src/feishu/client.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');
const DAY = 86_400_000;
const THREE_DAYS = 3 * DAY;

/*
 * An ambiguous create is looked up from when it was first attempted, not from "now": a leave
 * filed ten days ahead lies beyond the query's today + 1 cap, so only a search by creation
 * date can find it, and that creation may be days old (an outage, a resend).
 *
 * "Three days pass" on both sides: the first attempts run while the emulator's clock stands
 * three days back and the sync table's timestamps are then moved three days back too; for the
 * retry the emulator's clock jumps ahead to now.
 */
describe('lookups of ambiguous creates search from the first attempt (CLI, SQLite)', () => {
  let emu: Emulator;
  let db: TestDatabase;
  let dir: string;
  let cfg: string;
  let env: NodeJS.ProcessEnv;
  let start: DateTime;
  beforeAll(async () => {
    emu = await startEmulator({ strict: true, rateLimit: 500 });
  });
  afterAll(async () => emu?.close());
  beforeEach(async () => {
    emu.reset();
    emu.setOptions({ clockOffsetMs: -THREE_DAYS, faults: {} });
    db = await createTestDatabase('sqlite', 'lookup_window');
    await prepareSample(db, { employees: 2, leaves: 0, overtime: 0, trips: 0, outs: 0, seed: 1 });
    // A leave filed ten days ahead (seen from "three days ago", the time of the first attempts).
    start = sampleNow().minus({ days: 3 }).startOf('day').plus({ days: 10, hours: 9 });
    await db.db('leave_requests').insert({
      id: 1,
      employee_id: 1,
      leave_type_code: 'ANNUAL',
      start_at: sqlTime(start),
      end_at: sqlTime(start.set({ hour: 18 })),
      duration: 1,
      reason: '回老家',
      status: 'approved',
      deleted_at: null,
      created_at: sqlTime(sampleNow().minus({ minutes: 5 })),
      updated_at: sqlTime(sampleNow().minus({ minutes: 5 })),
    });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lookup-window-'));
    const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
    raw.feishu.retry_base_ms = 20;
    raw.feishu.max_attempts = 1;
    raw.log = { level: 'info', format: 'json' };
    cfg = path.join(dir, 'config.yaml');
    fs.writeFileSync(cfg, YAML.stringify(raw));
    env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
  });
  afterEach(async () => db?.drop());

  /** Three days pass: the sync table's times move back, the emulator's clock to now. */
  async function threeDaysPass(): Promise<void> {
    await db.db(t.syncRecords).update({
      created_at: db.db.raw('created_at - ?', [THREE_DAYS]),
      updated_at: db.db.raw('updated_at - ?', [THREE_DAYS]),
      next_attempt_at: db.db.raw('next_attempt_at - ?', [THREE_DAYS]),
    });
    emu.setOptions({ clockOffsetMs: 0, faults: {} });
  }

  async function creates() {
    return (await db.db(t.syncRecords).where({ operation: 'create' }).orderBy('id')) as Array<{ status: string; approval_id: string | null; idempotency_key: string }>;
  }

  /** Stored in Feishu, every reply lost (the lookups' too): the create ends dead. */
  async function storedRepliesLost(): Promise<void> {
    emu.setOptions({ faults: { 'stored-then-failed': 1 } });
    const res = await runCli(['--config', cfg, 'once'], { env });
    expect(res.code).toBe(1);
    expect((await creates()).map((c) => c.status)).toEqual(['dead']);
    expect(emu.ledger()).toHaveLength(1);
  }

  async function cancelAndSync(): Promise<void> {
    await cancelRows(db.db, 'leave_requests', [1]);
    const res = await runCli(['--config', cfg, 'once'], { env });
    expect(res.stderr).not.toMatch(/"level":"error"/);
    expect(res.code).toBe(0);
  }

  it('outage: stored, replies lost → dead; `retry --status dead` three days later finds it, stores nothing twice; a cancellation then revokes it', async () => {
    await storedRepliesLost();
    await threeDaysPass();
    const retry = await runCli(['--config', cfg, 'retry', '--status', 'dead'], { env });
    expect(retry.stdout).toMatch(/^1 dead operation/);
    const once = await runCli(['--config', cfg, 'once'], { env });
    expect(once.code).toBe(0);
    const ledger = emu.ledger();
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ status: 2, userId: 'E00001', kind: 'leave' });
    expect((await creates()).map((c) => [c.status, c.approval_id])).toEqual([['sent', ledger[0]!.approvalId]]);

    await cancelAndSync();
    expect(emu.ledger().map((e) => e.status)).toEqual([4]);
  });

  it('`backfill --resend` three days later finds the existing approval instead of failing; a cancellation then revokes it', async () => {
    expect((await runCli(['--config', cfg, 'once'], { env })).code).toBe(0);
    const [first] = emu.ledger();
    await threeDaysPass();
    const date = start.toFormat('yyyy-MM-dd');
    const resend = await runCli(['--config', cfg, 'backfill', '--from', date, '--to', date, '--kinds', 'leave', '--resend'], { env });
    expect(resend.code).toBe(0);
    expect(emu.posts()[(await creates())[0]!.idempotency_key]).toBe(2);
    expect(emu.ledger()).toHaveLength(1);
    expect((await creates()).map((c) => [c.status, c.approval_id])).toEqual([['sent', first!.approvalId]]);

    await cancelAndSync();
    expect(emu.ledger().map((e) => e.status)).toEqual([4]);
  });

  it('a dead create may exist in Feishu: a cancellation of its record revokes it (looked up first)', async () => {
    await storedRepliesLost();
    await threeDaysPass();
    await cancelAndSync();
    expect(emu.ledger().map((e) => e.status)).toEqual([4]);
    expect((await creates()).map((c) => c.status)).toEqual(['revoked']);
  });
});

describe('lookupWindows: the creation-date search starts at the first attempt', () => {
  const NOW = Date.UTC(2026, 2, 10, 4, 0, 0);
  it('reaches back to a first attempt 120 days ago for a record beyond the cap (a leave filed months ahead, resent)', () => {
    const ws = lookupWindows({ date: '20260901', startTime: '2026-09-01 09:00:00', nowMs: NOW, timeZone: 'Asia/Shanghai', includeCreateTime: false, createdFrom: NOW - 120 * DAY });
    expect(ws.every((w) => w.type === 'CreateTime')).toBe(true);
    expect(Math.min(...ws.map((w) => w.from))).toBe(20251109); // the day before 2025-11-10
    expect(Math.max(...ws.map((w) => w.to))).toBe(20260311);
  });
});

describe('emulator clock offset', () => {
  it('shifts creation times and the today + 1 cap, and is settable over HTTP', async () => {
    const emu = await startEmulator({ rateLimit: 500 });
    try {
      const client = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret });
      const inFourDays = Number(DateTime.now().setZone('Asia/Shanghai').plus({ days: 4 }).toFormat('yyyyMMdd'));
      const query = () => client.queryUserApprovals('employee_no', { user_ids: ['E1'], check_date_from: inFourDays, check_date_to: inFourDays });
      await expect(query()).rejects.toMatchObject({ feishuCode: 1220001 }); // beyond today + 1
      const res = await fetch(`${emu.url}/_emulator/options`, { method: 'POST', body: JSON.stringify({ clockOffsetMs: 5 * DAY }) });
      expect(res.status).toBe(200);
      await expect(query()).resolves.toEqual({ user_approvals: [] });
      const day = DateTime.now().setZone('Asia/Shanghai').toFormat('yyyy-MM-dd');
      await client.createUserApproval('employee_no', {
        user_id: 'E1',
        date: day.replace(/-/g, ''),
        leaves: [{ idempotent_id: 'clock-offset-1', uniq_id: 'ANNUAL', unit: 1, interval: 28800, start_time: `${day} 09:00:00`, end_time: `${day} 18:00:00`, i18n_names: { ch: '年假' }, default_locale: 'ch', reason: 'x' } as never],
      });
      const [entry] = emu.ledger();
      expect(entry!.createdAt - Date.now()).toBeGreaterThan(5 * DAY - 60_000);
    } finally {
      await emu.close();
    }
  });
});

describe('a repeated revoke is recognised however long ago the approval was created', () => {
  it('the lookup after a refused revoke searches creation dates from the create', async () => {
    const emu = await startEmulator({ rateLimit: 500, clockOffsetMs: -40 * DAY, revokeTwice: 'error' }); // the refusal of a repeat revoke is the point
    try {
      const client = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret });
      const createdAt = Date.now() - 40 * DAY;
      const day = DateTime.now().setZone('Asia/Shanghai').plus({ days: 20 }).toFormat('yyyy-MM-dd');
      const ua = {
        user_id: 'E1',
        date: day.replace(/-/g, ''),
        leaves: [{ idempotent_id: 'revoke-window-1', uniq_id: 'ANNUAL', unit: 1, interval: 28800, start_time: `${day} 09:00:00`, end_time: `${day} 18:00:00`, i18n_names: { ch: '年假' }, default_locale: 'ch', reason: 'x' } as never],
      };
      const { approvalId } = await client.createUserApproval('employee_no', ua);
      emu.setOptions({ clockOffsetMs: 0 });
      await client.revokeApproval(approvalId, 'leave');
      // The reply of that revoke was lost: sent again, Feishu refuses (not approved any more).
      const lookup = { employeeType: 'employee_no' as const, userId: 'E1', date: ua.date, startTime: `${day} 09:00:00`, endTime: `${day} 18:00:00` };
      const again = await client.revokeApproval(approvalId, 'leave', { lookup: { ...lookup, createdFrom: createdAt } });
      expect(again.alreadyRevoked).toBe(true);
      expect([3, 4]).toContain(again.status); // withdrawn, under whichever status query shows it
    } finally {
      await emu.close();
    }
  });
});
