import { DateTime } from 'luxon';
import type { Knex } from 'knex';
import { dialectsUnderTest } from './helpers/databases.js';
import { withSampleWorld, type SampleWorld } from './helpers/sampleWorld.js';
import { migrateDown, migrateLatest } from '../src/state/migrate.js';
import { foldCounts, insertOperations, statusCounts, updateOperations } from '../src/state/outbox.js';
import { applyRetention } from '../src/state/retention.js';
import { stateTables } from '../src/state/tables.js';
import { sampleNow, sqlTime } from '../src/sample/index.js';

/*
 * `status`, `/api/status` and the console's overview read the operations per kind and status
 * from counts kept as the sync table is written, not from a count of the whole table. These
 * tests drive every writer (planning, sending, failures, dead creates, retry, resend, a
 * cancellation's revoke, retention, the migration that starts the counts) and check, each
 * time, the kept counts against a real COUNT of the sync table.
 */

const t = stateTables('attendance_sync_');

async function realCounts(db: Knex): Promise<Record<string, Record<string, number>>> {
  const rows = (await db(t.syncRecords).select('kind', 'status').count({ n: '*' }).groupBy('kind', 'status')) as Array<{ kind: string; status: string; n: number | string }>;
  const out: Record<string, Record<string, number>> = {};
  for (const r of rows) (out[r.kind] ??= {})[r.status] = Number(r.n);
  return out;
}

/** `status --json`'s counts, which must equal a count of the table. */
async function expectStatusTrue(w: SampleWorld, when: string): Promise<Record<string, Record<string, number>>> {
  const res = await w.cli('status', '--json');
  expect({ when, code: res.code }).toEqual({ when, code: 0 });
  const shown = (JSON.parse(res.stdout) as { counts: Record<string, Record<string, number>> }).counts;
  expect({ when, counts: shown }).toEqual({ when, counts: await realCounts(w.db.db) });
  return shown;
}

async function countRows(db: Knex): Promise<number> {
  return Number(((await db(t.statusCounts).count({ n: '*' }).first()) as { n: number | string }).n);
}

describe.each(dialectsUnderTest())('kept status counts on %s', (dialect) => {
  let w: SampleWorld;
  beforeAll(async () => {
    w = await withSampleWorld(dialect, `counts_${dialect}`, {
      sample: { employees: 8, leaves: 24, overtime: 0, trips: 0, outs: 0, seed: 9, startDate: '2026-03-02', days: 20, now: DateTime.utc().minus({ hours: 2 }) },
      emulator: { strict: true, rateLimit: 500 },
      cliTimeoutMs: 90_000,
      tweak: (raw) => {
        raw.feishu.retry_base_ms = 20;
        raw.feishu.retry_max_ms = 100;
        raw.feishu.timeout_ms = 3_000;
        raw.feishu.max_attempts = 2;
        raw.log = { level: 'info', format: 'json' };
        for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
      },
    });
  });
  afterAll(async () => w?.close());

  it('follow failures, dead creates, edits, cancellations, retry and resend through the CLI; each cycle folds them', async () => {
    const employees = (await w.db.db('employees').orderBy('id').pluck('employee_no')) as string[];
    // Two employees out of the app's scope (failed), and replies lost half the time (dead or pending).
    w.emu.setOptions({ users: employees.slice(2), faults: { 'stored-then-failed': 0.5 } });
    expect((await w.cli('once')).code).toBe(1);
    const first = await expectStatusTrue(w, 'after a cycle with failures');
    expect((first.leave?.failed ?? 0) + (first.leave?.dead ?? 0)).toBeGreaterThan(0);
    // The cycle folded what its writes appended: one row per kind and status.
    expect(await countRows(w.db.db)).toBe(Object.keys(first.leave ?? {}).length);

    w.emu.setOptions({ users: null, faults: {} });
    const approved = (await w.db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').pluck('id')) as number[];
    const at = sqlTime(sampleNow());
    await w.db.db('leave_requests').where({ id: approved[0] }).update({ status: 'cancelled', updated_at: at });
    await w.db.db('leave_requests').where({ id: approved[1] }).update({ start_at: '2026-03-20 09:00:00', end_at: '2026-03-20 18:00:00', updated_at: at });
    await w.cli('once');
    await expectStatusTrue(w, 'after an edit and a cancellation');
    expect((await w.cli('retry', '--status', 'failed')).code).toBe(0);
    await expectStatusTrue(w, 'after retry --status failed');
    expect((await w.cli('retry', '--status', 'dead')).code).toBe(0);
    await expectStatusTrue(w, 'after retry --status dead');
    expect((await w.cli('once')).code).toBe(0);
    const drained = await expectStatusTrue(w, 'after the drain');
    expect(drained.leave?.failed ?? 0).toBe(0);
    expect(drained.leave?.revoked ?? 0).toBeGreaterThan(0);
    const resend = await w.cli('backfill', '--from', '2026-03-01', '--to', '2026-04-30', '--kinds', 'leave', '--resend');
    expect(resend.code).toBe(0);
    await expectStatusTrue(w, 'after backfill --resend');
  }, 300_000);

  it('follow retention deletes, and concurrent writers and folds lose nothing', async () => {
    // Retention with "now" a year ahead: the finished history (revoked creates, sent revokes) goes.
    const deleted = await applyRetention(w.db.db, t, { retentionDays: 1, now: Date.now() + 365 * 86_400_000 });
    expect(deleted.operations).toBeGreaterThan(0);
    expect(await statusCounts(w.db.db, t)).toEqual(toList(await realCounts(w.db.db)));

    // Writers and folds at once: inserts, status changes back and forth, three folds.
    const ops = Array.from({ length: 60 }, (_, i) => ({ kind: 'overtime' as const, sourceKey: `c-${i}`, version: 'v1', generation: 0, operation: 'create' as const, idempotencyKey: `c-${i}` }));
    const flip = (from: string, to: string) => updateOperations(w.db.db, t, (q) => q.where({ kind: 'overtime', status: from }).whereIn('source_key', ops.slice(0, 30).map((o) => o.sourceKey)), { status: to as 'failed' });
    await Promise.all([
      ...ops.map((o, i) => insertOperations(w.db.db, t, [o], 1_000 + i)),
      foldCounts(w.db.db, t).catch(() => 0),
      foldCounts(w.db.db, t).catch(() => 0),
    ]);
    await Promise.all([flip('pending', 'failed'), foldCounts(w.db.db, t).catch(() => 0), insertOperations(w.db.db, t, ops, 2_000)]);
    expect(await statusCounts(w.db.db, t)).toEqual(toList(await realCounts(w.db.db)));
    expect((await realCounts(w.db.db)).overtime).toEqual({ pending: 30, failed: 30 });
    await foldCounts(w.db.db, t);
    expect(await statusCounts(w.db.db, t)).toEqual(toList(await realCounts(w.db.db)));
  }, 120_000);

  it('start, in the migration that adds them, from a count of the sync table as it is', async () => {
    const before = await realCounts(w.db.db);
    // The state as an earlier release left it: no counts table, a sync table full of history.
    await migrateDown(w.db.db, t.prefix);
    expect(await w.db.db.schema.hasTable(t.statusCounts)).toBe(false);
    await migrateLatest(w.db.db, t.prefix);
    expect(await statusCounts(w.db.db, t)).toEqual(toList(before));
  }, 60_000);
});

function toList(counts: Record<string, Record<string, number>>): Array<{ kind: string; status: string; count: number }> {
  const out: Array<{ kind: string; status: string; count: number }> = [];
  for (const kind of Object.keys(counts).sort()) for (const status of Object.keys(counts[kind]!).sort()) out.push({ kind, status, count: counts[kind]![status]! });
  return out;
}
