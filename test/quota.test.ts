import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { expectedFromSource, expectLedgerMatchesSource } from './helpers/pipeline.js';
import type { CliResult } from './helpers/cli.js';
import { leaveWorld, type LeaveWorld } from './helpers/leaveWorld.js';
import { startEmulator, type Emulator, type EmulatorOptions } from '../src/emulator/index.js';
import { sampleNow, sqlTime } from '../src/sample/index.js';
import { stateTables } from '../src/state/tables.js';
import { migrateLatest } from '../src/state/migrate.js';
import { addQuotaCalls, QUOTA_FLUSH_CALLS, QuotaMeter, readQuotaUsed } from '../src/state/quota.js';
import { createLogger } from '../src/log/logger.js';

/*
 * Feishu's monthly API quota through the operator's commands against the emulator: a quota
 * used up mid-cycle keeps the rest pending (no attempt used), `once` exits 1 with one error
 * line, the next cycle probes with one call, and a new month or a raised quota sends the rest
 * once. The worker's own count (status --json, backfill --dry-run) matches what the emulator
 * counted across runs.
 */

const t = stateTables('attendance_sync_');
const ZONE = 'Asia/Shanghai';

type Setup = LeaveWorld;

async function setup(label: string, emuOpts: Partial<EmulatorOptions>, tweak: (raw: any) => void = () => {}): Promise<Setup> {
  return leaveWorld(label, { sample: { employees: 8, leaves: 14, seed: 5, startDate: '2026-03-02', days: 20 }, emulator: emuOpts, tweak });
}

const month = () => DateTime.now().setZone(ZONE).toFormat('yyyy-MM');
const logLines = (r: CliResult) =>
  r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: string; message: string; [k: string]: unknown });
const errorLines = (r: CliResult) => logLines(r).filter((l) => l.level === 'error');
const quotaWarnings = (r: CliResult) => logLines(r).filter((l) => l.level === 'warn' && /monthly API quota: \d+ % used/.test(l.message));
/** Successful calls the emulator counted, over every month. */
const emulatorUsed = (emu: Emulator) => Object.values(emu.stats().quotaUsed).reduce((a, b) => a + b, 0);
const approvedLeaves = async (db: TestDatabase) => (await expectedFromSource(db.db)).leave.length;

async function syncStatuses(db: TestDatabase): Promise<Record<string, number>> {
  const rows = (await db.db(t.syncRecords).select('status').count({ n: '*' }).groupBy('status')) as Array<{ status: string; n: number | string }>;
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

async function quotaJson(s: Setup): Promise<unknown> {
  const r = await s.cli('status', '--json');
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { feishu: { quota: unknown } }).feishu.quota;
}

describe('emulator: the monthly quota', () => {
  let emu: Emulator;
  afterEach(async () => emu?.close());

  it('answers HTTP 429 with 99991403 over the quota; failed and token calls do not count; a new month starts at 0', async () => {
    emu = await startEmulator({ monthlyQuota: 2 });
    const fetchToken = async () => {
      const tokenRes = await fetch(`${emu.url}/open-apis/auth/v3/tenant_access_token/internal`, { method: 'POST', body: JSON.stringify({ app_id: emu.appId, app_secret: emu.appSecret }) });
      return ((await tokenRes.json()) as { tenant_access_token: string }).tenant_access_token;
    };
    let token = await fetchToken();
    const query = (from: string) =>
      fetch(`${emu.url}/open-apis/attendance/v1/user_approvals/query?employee_type=employee_id`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ user_ids: ['u1'], check_date_from: Number(from), check_date_to: Number(from) }),
      });
    const today = DateTime.now().setZone(ZONE).toFormat('yyyyMMdd');
    expect((await query('bad')).status).toBe(400); // refused: not counted
    expect(await (await query(today)).json()).toMatchObject({ code: 0 });
    expect((await query(today)).status).toBe(200);
    const over = await query(today);
    expect(over.status).toBe(429);
    expect(await over.json()).toMatchObject({ code: 99991403 });
    expect(emu.stats().quotaUsed).toEqual({ [month()]: 2 });
    expect(emu.stats().quotaExceeded).toBe(1);
    // The 1st has passed (a token of the old clock has expired meanwhile: fetch one again).
    emu.setOptions({ clockOffsetMs: 32 * 86_400_000 });
    token = await fetchToken();
    expect((await query(DateTime.now().setZone(ZONE).plus({ days: 32 }).toFormat('yyyyMMdd'))).status).toBe(200);
    expect(emu.stats().quotaExceeded).toBe(1);
    expect(Object.values(emu.stats().quotaUsed)).toEqual([2, 1]);
  });

  it('the quota fault answers HTTP 429 too', async () => {
    emu = await startEmulator({ faults: { quota: 1 } });
    const tokenRes = await fetch(`${emu.url}/open-apis/auth/v3/tenant_access_token/internal`, { method: 'POST', body: JSON.stringify({ app_id: emu.appId, app_secret: emu.appSecret }) });
    const token = ((await tokenRes.json()) as { tenant_access_token: string }).tenant_access_token;
    const r = await fetch(`${emu.url}/open-apis/attendance/v1/approval_infos/process`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{}' });
    expect(r.status).toBe(429);
    expect(await r.json()).toMatchObject({ code: 99991403 });
  });
});

describe('the monthly quota through the CLI (SQLite)', () => {
  let s: Setup;
  afterEach(async () => s?.close());

  it('used up mid-cycle: the rest stays pending, once exits 1 with one error line, the next cycle probes once, a raised quota sends the rest once', async () => {
    const QUOTA = 4;
    s = await setup('quota_midcycle', { monthlyQuota: QUOTA }, (raw) => (raw.feishu.monthly_quota = 1000));
    const n = await approvedLeaves(s.db);
    expect(n).toBeGreaterThan(QUOTA + 2);

    const first = await s.cli('once');
    expect(first.code).toBe(1);
    const errors = errorLines(first);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/monthly API quota is used up/);
    expect(s.emu.ledger()).toHaveLength(QUOTA);
    const statuses = await syncStatuses(s.db);
    expect(statuses.failed ?? 0).toBe(0);
    expect(statuses.dead ?? 0).toBe(0);
    expect(statuses.sent).toBe(QUOTA);
    expect(statuses.pending).toBe(n - QUOTA);
    // A quota refusal uses up no attempt.
    const attempts = (await s.db.db(t.syncRecords).where({ status: 'pending' }).pluck('attempts')) as number[];
    expect(attempts.every((a) => Number(a) === 0)).toBe(true);
    expect(await quotaJson(s)).toEqual({ month: month(), used: QUOTA, limit: 1000 });

    // Still over: the next cycle costs Feishu one refused call, not one per operation.
    const refusedBefore = s.emu.stats().quotaExceeded;
    const second = await s.cli('once');
    expect(second.code).toBe(1);
    expect(errorLines(second)).toHaveLength(1);
    expect(s.emu.stats().quotaExceeded - refusedBefore).toBe(1);
    expect((await syncStatuses(s.db)).pending).toBe(n - QUOTA);

    // The quota is raised (a new plan, or the temporary increase): everything goes, once.
    s.emu.setOptions({ monthlyQuota: 10_000 });
    const third = await s.cli('once');
    expect(third.code).toBe(0);
    expect(errorLines(third)).toHaveLength(0);
    await expectLedgerMatchesSource(s.db, s.emu);
    expect(Object.values(s.emu.posts()).every((p) => p === 1)).toBe(true);
    expect((await syncStatuses(s.db)).sent).toBe(n);
    // Counted across the three runs as the emulator counted.
    expect(emulatorUsed(s.emu)).toBe(n);
    expect(await quotaJson(s)).toEqual({ month: month(), used: n, limit: 1000 });
    const text = await s.cli('status');
    expect(text.stdout).toContain(`Feishu quota ${month()}: ${n} call(s) used of 1000`);
  });

  it('a new month in Feishu sends the rest; counting across runs follows every successful call, revokes included', async () => {
    s = await setup('quota_month', {});
    const n = await approvedLeaves(s.db);
    // Half a month's worth each month: the rest fits into the next month's quota.
    const q = Math.ceil(n / 2);
    s.emu.setOptions({ monthlyQuota: q });
    expect((await s.cli('once')).code).toBe(1);
    expect(s.emu.ledger()).toHaveLength(q);
    expect(await quotaJson(s)).toEqual({ month: month(), used: q, limit: null });

    // The 1st of the next month in Feishu.
    s.emu.setOptions({ clockOffsetMs: 32 * 86_400_000 });
    const next = await s.cli('once');
    expect(errorLines(next)).toHaveLength(0);
    expect(next.code).toBe(0);
    await expectLedgerMatchesSource(s.db, s.emu);
    expect(Object.values(s.emu.posts()).every((p) => p === 1)).toBe(true);
    expect(Object.values(s.emu.stats().quotaUsed)).toEqual([q, n - q]);
    s.emu.setOptions({ monthlyQuota: null });

    // A cancelled leave costs one more call (its revoke); the count follows.
    const id = (await s.db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').first('id')) as { id: number };
    await s.db.db('leave_requests').where({ id: id.id }).update({ status: 'cancelled', updated_at: sqlTime(sampleNow()) });
    expect((await s.cli('once')).code).toBe(0);
    await expectLedgerMatchesSource(s.db, s.emu);
    expect(emulatorUsed(s.emu)).toBe(n + 1);
    // The worker counts in its own calendar month (still this one).
    expect(await quotaJson(s)).toEqual({ month: month(), used: n + 1, limit: null });
  });

  it('warns once at 80 % of feishu.monthly_quota, not below it', async () => {
    s = await setup('quota_warn', {}, (raw) => (raw.feishu.monthly_quota = 1000));
    const n = await approvedLeaves(s.db);
    const first = await s.cli('once');
    expect(first.code).toBe(0);
    expect(quotaWarnings(first)).toHaveLength(0);

    // The quota set just above what is used: the next call crosses 80 %.
    const limit = Math.floor((n + 1) / 0.8);
    expect(n / limit).toBeLessThan(0.8);
    s.reconfigure((raw) => (raw.feishu.monthly_quota = limit));
    const id = (await s.db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').first('id')) as { id: number };
    await s.db.db('leave_requests').where({ id: id.id }).update({ status: 'cancelled', updated_at: sqlTime(sampleNow()) });
    const second = await s.cli('once');
    expect(second.code).toBe(0);
    const warnings = quotaWarnings(second);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ used: n + 1, limit, month: month() });
  });

  it('backfill --dry-run prints the calls it needs against what is left', async () => {
    s = await setup('quota_dryrun', { monthlyQuota: 2 }, (raw) => (raw.feishu.monthly_quota = 5));
    const n = await approvedLeaves(s.db);
    const dry = await s.cli('backfill', '--from', '2026-03-01', '--to', '2026-04-30', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`Feishu calls needed: ${n} (${n} create(s), 0 revoke(s)); monthly quota ${month()}: 0 of 5 used, 5 left — ${n - 5} more than is left`);
    expect(s.emu.ledger()).toHaveLength(0);

    expect((await s.cli('backfill', '--from', '2026-03-01', '--to', '2026-04-30')).code).toBe(1); // stops at Feishu's quota of 2
    expect(s.emu.ledger()).toHaveLength(2);
    s.emu.setOptions({ monthlyQuota: null });
    expect((await s.cli('once')).code).toBe(0);
    await expectLedgerMatchesSource(s.db, s.emu);
    const again = await s.cli('backfill', '--from', '2026-03-01', '--to', '2026-04-30', '--dry-run');
    expect(again.stdout).toContain(`Feishu calls needed: 0 (0 create(s), 0 revoke(s)); monthly quota ${month()}: ${n} of 5 used, 0 left`);
  });
});

describe.each(dialectsUnderTest())('the quota count on %s', (dialect) => {
  let db: TestDatabase;
  afterEach(async () => db?.drop());

  it('adds per month, and a meter leaves at most one batch unwritten until it flushes', async () => {
    db = await createTestDatabase(dialect, 'quota_count');
    await migrateLatest(db.db, 'attendance_sync_');
    expect(await addQuotaCalls(db.db, t, '2026-11', 3)).toBe(3);
    expect(await addQuotaCalls(db.db, t, '2026-11', 4)).toBe(7);
    expect(await readQuotaUsed(db.db, t, '2026-12')).toBe(0);

    const lines: string[] = [];
    const stream = new (await import('node:stream')).Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
    const meter = new QuotaMeter({ db: db.db, t, zone: ZONE, limit: 150, logger: createLogger({ format: 'json', stream }), now: () => Date.parse('2026-12-15T00:00:00Z') });
    const calls = QUOTA_FLUSH_CALLS * 2 + 20;
    for (let i = 0; i < calls; i++) meter.record();
    // Two full batches are written without waiting for anything; the rest waits for its timer or a flush.
    const end = Date.now() + 20_000;
    while ((await readQuotaUsed(db.db, t, '2026-12')) < QUOTA_FLUSH_CALLS * 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(await readQuotaUsed(db.db, t, '2026-12')).toBeGreaterThanOrEqual(calls - QUOTA_FLUSH_CALLS);
    await meter.flush();
    expect(await readQuotaUsed(db.db, t, '2026-12')).toBe(calls);
    expect(await readQuotaUsed(db.db, t, '2026-11')).toBe(7);
    // 120 of 150 is 80 %: one warning, however many writes follow.
    for (let i = 0; i < 10; i++) meter.record();
    await meter.flush();
    expect(lines.filter((l) => /monthly API quota: \d+ % used/.test(l))).toHaveLength(1);
  });
  it('counts each call in the month of its instant in feishu.time_zone, across month ends either way', async () => {
    db = await createTestDatabase(dialect, 'quota_month_end');
    await migrateLatest(db.db, 'attendance_sync_');
    // Asia/Shanghai is UTC+8: 2026-11-30T16:00Z is midnight of 1 December there.
    const instants = ['2026-11-30T15:59:59.999Z', '2026-11-30T16:00:00.000Z', '2026-11-15T00:00:00Z', '2026-12-31T15:59:59.999Z', '2026-12-31T16:00:00Z', '2026-12-01T00:00:00Z'];
    let i = 0;
    const meter = new QuotaMeter({ db: db.db, t, zone: 'Asia/Shanghai', limit: null, logger: createLogger({ level: 'error' }), now: () => Date.parse(instants[i]!) });
    for (; i < instants.length; i++) meter.record();
    await meter.flush();
    expect(await readQuotaUsed(db.db, t, '2026-11')).toBe(2);
    expect(await readQuotaUsed(db.db, t, '2026-12')).toBe(3);
    expect(await readQuotaUsed(db.db, t, '2027-01')).toBe(1);
  });
});
