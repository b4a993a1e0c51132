import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { cancelRows, sampleNow, softDeleteRows, sqlTime, touchRows } from '../src/sample/index.js';
import { statusCounts } from '../src/state/outbox.js';
import { getWatermark } from '../src/state/watermarks.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');

describe.each(dialectsUnderTest())('sync pipeline on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `pipeline_${dialect}`);
    await prepareSample(db, { employees: 25, leaves: 150, overtime: 60, trips: 40, outs: 60, seed: 11, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('first sync: the ledger equals the set computed from the source, exactly', async () => {
    const p = testPipeline(db, sampleConfig(db.url, emu));
    const r = await runCycle(p.deps);
    expect(r.outcome).toBe('ok');
    const expected = await expectedFromSource(db.db);
    expect(diffLedger(expected, activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
    expect(r.plan.created).toBe(Object.values(expected).flat().length);
    expect(p.logs()).toMatch(/"message":"cycle finished"/);
    expect((await getWatermark(db.db, t, 'leave'))?.cursor?.value).toBeTruthy();
  });

  it('unchanged rows make no call', async () => {
    const p = testPipeline(db, sampleConfig(db.url, emu));
    const before = emu.stats().calls;
    const r = await runCycle(p.deps);
    expect(r.plan.created + r.plan.revoked).toBe(0);
    expect(emu.stats().calls.create).toBe(before.create);
    expect(emu.stats().calls.process).toBe(before.process);
  });

  it('edits revoke the old approval and create the new version; cancellations and soft deletes revoke', async () => {
    const p = testPipeline(db, sampleConfig(db.url, emu));
    const approvedLeaves = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(8).pluck('id')) as number[];
    const approvedOt = (await db.db('overtime_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(3).pluck('id')) as number[];
    const approvedTrips = (await db.db('trip_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(2).pluck('id')) as number[];
    await touchRows(db.db, 'leave_requests', approvedLeaves.slice(0, 5), { reason: '改期：家中有事' });
    await cancelRows(db.db, 'overtime_requests', approvedOt);
    await softDeleteRows(db.db, 'trip_requests', approvedTrips);
    const revokedBefore = emu.stats().revoked;
    const r = await runCycle(p.deps);
    expect(r.outcome).toBe('ok');
    expect(r.plan.created).toBe(5);
    expect(r.plan.revoked).toBe(5 + 3 + 2);
    expect(emu.stats().revoked - revokedBefore).toBe(10);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
    const edited = emu.ledger().filter((e) => e.kind === 'leave' && e.item.reason === '改期：家中有事');
    expect(edited).toHaveLength(5);
    expect(edited.every((e) => e.status === 2)).toBe(true);
  });

  it('an invalid row is recorded with its reasons while the rest syncs; fixing it syncs it', async () => {
    const p = testPipeline(db, sampleConfig(db.url, emu));
    const now = sqlTime(sampleNow());
    const good = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id', 'desc').first()) as { id: number };
    const bad = 300_000;
    await db.db('leave_requests').insert({ id: bad, employee_id: 2, leave_type_code: 'XYZ', start_at: '2026-06-03 09:00:00', end_at: '2026-06-02 18:00:00', duration: 1, reason: '坏数据', status: 'approved', created_at: now, updated_at: now });
    await touchRows(db.db, 'leave_requests', [good.id], { reason: '有效的修改' });
    const r = await runCycle(p.deps);
    expect(r.plan.invalid).toBe(1);
    expect(r.plan.created).toBe(1);
    const invalid = await db.db(t.syncRecords).where({ kind: 'leave', source_key: String(bad), status: 'invalid' });
    expect(invalid).toHaveLength(1);
    const reasons = JSON.parse(invalid[0].reasons) as string[];
    expect(reasons.join(' | ')).toMatch(/unknown type code "XYZ"/);
    expect(reasons.join(' | ')).toMatch(/end_time is before start_time/);
    expect(p.logs()).toMatch(/invalid source row/);
    // read again (touched, same content): neither logged nor recorded a second time
    const again = testPipeline(db, sampleConfig(db.url, emu));
    await touchRows(db.db, 'leave_requests', [bad], {});
    await runCycle(again.deps);
    expect(again.logs()).not.toMatch(/invalid source row/);
    expect(await db.db(t.syncRecords).where({ kind: 'leave', source_key: String(bad), status: 'invalid' })).toHaveLength(1);
    // fixed in the source: synced on the next cycle
    await touchRows(db.db, 'leave_requests', [bad], { leave_type_code: 'SICK', end_at: '2026-06-03 18:00:00' });
    const fixed = await runCycle(testPipeline(db, sampleConfig(db.url, emu)).deps);
    expect(fixed.plan.created).toBe(1);
    expect(emu.ledger().some((e) => e.item.reason === '坏数据' && e.status === 2)).toBe(true);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  });

  it('1,000 rows sharing one updated_at across page boundaries: none missed, none sent twice', async () => {
    emu.setOptions({ rateLimit: 2000 });
    const p = testPipeline(
      db,
      sampleConfig(db.url, emu, (raw) => {
        raw.sync.page_size = 100;
        raw.feishu.rate_limit = 1000;
        raw.feishu.concurrency = 16;
      }),
    );
    const same = sqlTime(sampleNow());
    const rows = Array.from({ length: 1000 }, (_, i) => ({
      id: 100_000 + i,
      employee_id: 1 + (i % 25),
      leave_type_code: 'PERSONAL',
      start_at: sqlTime(DateTime.fromISO('2026-05-04T09:00:00', { zone: 'UTC' }).plus({ days: Math.floor(i / 25) })),
      end_at: sqlTime(DateTime.fromISO('2026-05-04T11:00:00', { zone: 'UTC' }).plus({ days: Math.floor(i / 25) })),
      duration: 2,
      reason: '批量导入',
      status: 'approved',
      deleted_at: null,
      created_at: same,
      updated_at: same,
    }));
    await db.db.batchInsert('leave_requests', rows, 200);
    const before = emu.stats().created;
    const r = await runCycle(p.deps);
    expect(r.plan.created).toBe(1000);
    expect(emu.stats().created - before).toBe(1000);
    emu.setOptions({ rateLimit: 50 });
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  });

  it('a row committed late with an updated_at inside the lookback window is synced', async () => {
    const p = testPipeline(db, sampleConfig(db.url, emu));
    const wm = await getWatermark(db.db, t, 'leave');
    const late = DateTime.fromSQL(String(wm!.cursor?.value).slice(0, 19), { zone: 'UTC' }).minus({ minutes: 2 });
    await db.db('leave_requests').insert({
      id: 200_000,
      employee_id: 3,
      leave_type_code: 'ANNUAL',
      start_at: '2026-06-01 09:00:00',
      end_at: '2026-06-01 18:00:00',
      duration: 1,
      reason: '迟到的提交',
      status: 'approved',
      created_at: sqlTime(late),
      updated_at: sqlTime(late),
    });
    const r = await runCycle(p.deps);
    expect(r.plan.created).toBe(1);
    expect(emu.ledger().some((e) => e.item.reason === '迟到的提交')).toBe(true);
  });

  it('with 10 % seeded faults (incl. stored-then-failed) enough cycles reach the exact set: 0 missing, 0 duplicates', async () => {
    emu.setOptions({ faults: { '5xx': 0.02, '502': 0.01, drop: 0.02, '429': 0.02, 'stored-then-failed': 0.02, 'no-row-affected': 0.01 }, seed: 5 });
    const p = testPipeline(db, sampleConfig(db.url, emu));
    const ids = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(120).pluck('id')) as number[];
    await touchRows(db.db, 'leave_requests', ids.slice(0, 80), { reason: '故障测试中的修改' });
    await cancelRows(db.db, 'leave_requests', ids.slice(80));
    for (let i = 0; i < 15; i++) {
      const r = await runCycle(p.deps);
      if (r.outboxDepth === 0) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    emu.setOptions({ faults: {} });
    expect(emu.stats().faults['stored-then-failed'] ?? 0).toBeGreaterThan(0);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
    const keys = emu.ledger().map((e) => e.idempotentId);
    expect(new Set(keys).size).toBe(keys.length);
    const counts = await statusCounts(db.db, t);
    expect(counts.filter((c) => ['pending', 'sending', 'dead'].includes(c.status)).reduce((a, c) => a + c.count, 0)).toBe(0);
  });
});
