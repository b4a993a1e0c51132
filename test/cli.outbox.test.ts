import { DateTime } from 'luxon';
import { activeInLedger, diffLedger, expectedFromSource } from './helpers/pipeline.js';
import type { TestDatabase } from './helpers/databases.js';
import { leaveWorld, type LeaveWorld } from './helpers/leaveWorld.js';
import type { EmulatorOptions } from '../src/emulator/index.js';
import { sampleNow, sqlTime } from '../src/sample/index.js';
import { stateTables } from '../src/state/tables.js';

/*
 * The operator's paths through the outbox, each through the real CLI against the emulator and
 * judged by what Feishu holds (user, kind, start, end) against the source: fixing a refusal
 * and retrying, retrying after an outage, resending a range, and a revoke Feishu refuses.
 */

const t = stateTables('attendance_sync_');

type Setup = LeaveWorld;

async function setup(label: string, emuOpts: Partial<EmulatorOptions> = {}, tweak: (raw: any) => void = () => {}): Promise<Setup> {
  return leaveWorld(label, { sample: { employees: 8, leaves: 14, seed: 5, startDate: '2026-03-02', days: 20 }, emulator: emuOpts, tweak });
}

interface LeaveRow {
  id: number;
  employee_no: string;
  start_at: string;
  end_at: string;
}

/** Approved, not deleted leave rows, one per employee, in id order. */
async function approvedRows(db: TestDatabase): Promise<LeaveRow[]> {
  const rows = (await db.db('leave_requests as r')
    .join('employees as e', 'e.id', 'r.employee_id')
    .where('r.status', 'approved')
    .whereNull('r.deleted_at')
    .orderBy('r.id')
    .select('r.id', 'e.employee_no', 'r.start_at', 'r.end_at')) as LeaveRow[];
  const seen = new Set<string>();
  return rows.filter((r) => !seen.has(r.employee_no) && seen.add(r.employee_no));
}

const now = () => sqlTime(sampleNow());
const shift = (v: string, days: number) => sqlTime(DateTime.fromSQL(String(v)).plus({ days }));

/** Move a leave by some days (a new version: other dates in Feishu). */
async function moveLeave(db: TestDatabase, id: number, days: number): Promise<void> {
  const r = (await db.db('leave_requests').where({ id }).first()) as LeaveRow;
  await db.db('leave_requests').where({ id }).update({ start_at: shift(r.start_at, days), end_at: shift(r.end_at, days), updated_at: now() });
}

async function cancelLeave(db: TestDatabase, id: number): Promise<void> {
  await db.db('leave_requests').where({ id }).update({ status: 'cancelled', updated_at: now() });
}

/** A new approved leave, a copy of row `like` with another id. */
async function copyLeave(db: TestDatabase, like: number, id: number): Promise<void> {
  const r = (await db.db('leave_requests').where({ id: like }).first()) as Record<string, unknown>;
  await db.db('leave_requests').insert({ ...r, id, created_at: now(), updated_at: now() });
}

async function expectFeishuMatchesSource(s: Setup): Promise<void> {
  expect(diffLedger(await expectedFromSource(s.db.db), activeInLedger(s.emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
}

/** Approved in Feishu for one row's current (user, start, end)? */
function held(s: Setup, r: { employee_no: string; start_at: string; end_at: string }): number {
  return s.emu.ledger().filter((e) => e.status === 2 && e.userId === r.employee_no && e.item.start_time === String(r.start_at).slice(0, 19) && e.item.end_time === String(r.end_at).slice(0, 19)).length;
}

describe('retry after a refusal or an outage sends only what the source still holds (CLI, SQLite)', () => {
  let s: Setup;
  afterEach(async () => s?.close());

  it('failed creates (user out of scope), then edited or cancelled: once, retry --status failed, once → Feishu equals the source', async () => {
    s = await setup('retry_failed');
    const rows = await approvedRows(s.db);
    const [a, b, e] = rows;
    const out = [a!, b!, e!].map((r) => r.employee_no);
    const everyone = (await s.db.db('employees').pluck('employee_no')) as string[];
    s.emu.setOptions({ users: everyone.filter((u) => !out.includes(u)) });
    const first = await s.cli('once');
    expect(first.code).toBe(1); // something failed
    expect(await s.db.db(t.syncRecords).where({ status: 'failed' }).count({ n: '*' }).first()).not.toMatchObject({ n: 0 });

    // The operator widens the app's scope; meanwhile one leave moved and one was cancelled.
    s.emu.setOptions({ users: null });
    await moveLeave(s.db, a!.id, 1);
    await cancelLeave(s.db, b!.id);
    expect((await s.cli('once')).code).toBe(0);
    const retry = await s.cli('retry', '--status', 'failed');
    expect(retry.code).toBe(0);
    expect((await s.cli('once')).code).toBe(0);
    await expectFeishuMatchesSource(s);
    // The old versions never reached Feishu at all.
    expect(held(s, a!)).toBe(0);
    expect(held(s, b!)).toBe(0);
    expect(held(s, e!)).toBe(1);
    expect(await s.db.db(t.syncRecords).whereIn('status', ['failed', 'dead', 'pending', 'sending'])).toEqual([]);
  }, 120_000);

  it('dead creates that Feishu stored, then edited or cancelled: retry --status dead before the next cycle → the stored ones are revoked', async () => {
    s = await setup('retry_dead_first', {}, (raw) => (raw.feishu.max_attempts = 1));
    const [c, d] = await approvedRows(s.db);
    // Stored, and every reply (and every lookup) lost: the creates die with Feishu holding them.
    s.emu.setOptions({ faults: { 'stored-then-failed': 1 } });
    expect((await s.cli('once')).code).toBe(1);
    expect(await s.db.db(t.syncRecords).where({ status: 'dead' }).count({ n: '*' }).first()).not.toMatchObject({ n: 0 });
    expect(held(s, c!)).toBe(1);
    s.emu.setOptions({ faults: {} });

    await moveLeave(s.db, c!.id, 2);
    await cancelLeave(s.db, d!.id);
    const retry = await s.cli('retry', '--status', 'dead');
    expect(retry.code).toBe(0);
    expect((await s.cli('once')).code).toBe(0);
    await expectFeishuMatchesSource(s);
    expect(held(s, c!)).toBe(0);
    expect(held(s, d!)).toBe(0);
  }, 120_000);

  it('dead creates that Feishu stored, retried into a period sealed meanwhile: found by idempotent_id and recorded sent; cancelled later → revoked', async () => {
    s = await setup('retry_dead_sealed', {}, (raw) => (raw.feishu.max_attempts = 1));
    const [c] = await approvedRows(s.db);
    s.emu.setOptions({ faults: { 'stored-then-failed': 1 } });
    expect((await s.cli('once')).code).toBe(1);
    s.emu.setOptions({ faults: {}, sealedUntil: DateTime.fromSQL(String(c!.start_at)).plus({ days: 1 }).toFormat('yyyyMMdd') });
    expect((await s.cli('retry', '--status', 'dead')).code).toBe(0);
    expect((await s.cli('once')).code).toBe(0);
    await expectFeishuMatchesSource(s);
    const create = (await s.db.db(t.syncRecords).where({ source_key: String(c!.id), operation: 'create' }).first()) as { status: string; approval_id: string | null };
    expect(create.status).toBe('sent');
    expect(create.approval_id).toMatch(/^\d+$/);
    // Reopened; the leave is cancelled: the stored approval is withdrawn.
    s.emu.setOptions({ sealedUntil: null });
    await cancelLeave(s.db, c!.id);
    expect((await s.cli('once')).code).toBe(0);
    expect(held(s, c!)).toBe(0);
    await expectFeishuMatchesSource(s);
  }, 120_000);

  it('dead creates, then edited or cancelled: once, retry --status dead, once → revoked; a revoke that died holds its replacement until retried', async () => {
    s = await setup('retry_dead_after', {}, (raw) => (raw.feishu.max_attempts = 1));
    const [f, like] = await approvedRows(s.db);
    expect((await s.cli('once')).code).toBe(0);
    await expectFeishuMatchesSource(s);

    // An outage: two new leaves are stored but their creates die; the revoke of an edited leave dies.
    await copyLeave(s.db, like!.id, 901);
    await copyLeave(s.db, like!.id, 902);
    await moveLeave(s.db, f!.id, 3);
    s.emu.setOptions({ faults: { 'stored-then-failed': 1 } });
    expect((await s.cli('once')).code).toBe(1);
    s.emu.setOptions({ faults: {} });
    const deadRevokes = (await s.db.db(t.syncRecords).where({ status: 'dead', operation: 'revoke' })) as unknown[];
    expect(deadRevokes).toHaveLength(1);
    const fNow = (await s.db.db('leave_requests as r').join('employees as e', 'e.id', 'r.employee_id').where('r.id', f!.id).first('e.employee_no', 'r.start_at', 'r.end_at')) as LeaveRow;
    // The new version of f waits for the revoke of the old one.
    expect(held(s, fNow)).toBe(0);

    await moveLeave(s.db, 901, 1);
    await cancelLeave(s.db, 902);
    // Exit 1: the held create is planned but cannot be sent until an operator acts.
    const heldOnce = await s.cli('once');
    expect(heldOnce.code).toBe(1);
    expect(heldOnce.stderr).toMatch(/held behind a failed or dead revoke/);
    // Still held: nothing sends the new version of f while the old one may stand.
    expect(held(s, fNow)).toBe(0);
    const status = await s.cli('status');
    expect(status.stdout).toMatch(/Held/);
    const retry = await s.cli('retry', '--status', 'dead');
    expect(retry.code).toBe(0);
    expect((await s.cli('once')).code).toBe(0);
    await expectFeishuMatchesSource(s);
    expect(await s.db.db(t.syncRecords).whereIn('status', ['failed', 'dead', 'pending', 'sending'])).toEqual([]);
  }, 120_000);
});

describe('backfill --resend with rows changed meanwhile (CLI, SQLite)', () => {
  let s: Setup;
  afterEach(async () => s?.close());

  it('a changed and a cancelled row end revoked in Feishu; no create with an approval_id is left superseded', async () => {
    s = await setup('resend');
    expect((await s.cli('once')).code).toBe(0);
    await expectFeishuMatchesSource(s);
    const [x, y] = await approvedRows(s.db);
    await moveLeave(s.db, x!.id, 1);
    await cancelLeave(s.db, y!.id);
    const res = await s.cli('backfill', '--from', '2026-03-01', '--to', '2026-04-30', '--resend');
    expect(res.code).toBe(0);
    await expectFeishuMatchesSource(s);
    expect(held(s, x!)).toBe(0);
    expect(held(s, y!)).toBe(0);
    expect(await s.db.db(t.syncRecords).where({ status: 'superseded' }).whereNotNull('approval_id')).toEqual([]);
    // A later cycle finds nothing left to repair.
    expect((await s.cli('once', '--rescan')).code).toBe(0);
    await expectFeishuMatchesSource(s);
  }, 120_000);
});

describe('a revoke Feishu refuses holds the replacement (CLI, SQLite)', () => {
  let s: Setup;
  afterEach(async () => s?.close());

  it('sealed period: the create of version 2 waits, status shows both; reopened, retry → revoke then create', async () => {
    s = await setup('sealed');
    expect((await s.cli('once')).code).toBe(0);
    const [z] = await approvedRows(s.db);
    const day = DateTime.fromSQL(String(z!.start_at));
    // The month of version 1 is sealed (封账); version 2 lies after it.
    s.emu.setOptions({ sealedUntil: day.plus({ days: 1 }).toFormat('yyyyMMdd') });
    await moveLeave(s.db, z!.id, 20);
    const zNow = { ...z!, start_at: shift(z!.start_at, 20), end_at: shift(z!.end_at, 20) };
    const first = await s.cli('once');
    expect(first.code).toBe(1);
    expect(held(s, z!)).toBe(1);
    expect(held(s, zNow)).toBe(0);
    const again = await s.cli('once');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/held behind a failed or dead revoke/);
    expect(held(s, zNow)).toBe(0);

    const status = await s.cli('status');
    expect(status.code).toBe(0);
    const heldLines = status.stdout.slice(status.stdout.indexOf('Held'));
    expect(heldLines).toMatch(new RegExp(`leave ${z!.id} create .*waits for revoke #\\d+ failed.*sealed`, 's'));
    const json = JSON.parse((await s.cli('status', '--json')).stdout);
    expect(json.held).toEqual([expect.objectContaining({ kind: 'leave', sourceKey: String(z!.id), create: expect.objectContaining({ status: 'pending' }), revoke: expect.objectContaining({ status: 'failed', feishuCode: 1220600 }) })]);

    // The period is reopened; the operator retries the revoke.
    s.emu.setOptions({ sealedUntil: null });
    const retry = await s.cli('retry', '--status', 'failed');
    expect(retry.stdout).toMatch(/^1 failed operation\(s\) queued again/);
    expect((await s.cli('once')).code).toBe(0);
    expect(held(s, z!)).toBe(0);
    expect(held(s, zNow)).toBe(1);
    await expectFeishuMatchesSource(s);
    expect((await s.cli('status', '--json')).stdout).toMatch(/"held": \[\]/);
  }, 120_000);
});
