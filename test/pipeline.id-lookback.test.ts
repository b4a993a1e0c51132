import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { getWatermark } from '../src/state/watermarks.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');

function leave(id: number, reason: string) {
  const day = DateTime.now().setZone('Asia/Shanghai');
  return {
    id,
    employee_id: 1,
    leave_type_code: 'ANNUAL',
    start_at: day.toFormat('yyyy-MM-dd 09:00:00'),
    end_at: day.toFormat('yyyy-MM-dd 18:00:00'),
    duration: 1,
    reason,
    status: 'approved',
    created_at: '2000-01-01 00:00:00',
    updated_at: '2000-01-01 00:00:00',
  };
}

/*
 * AUTO_INCREMENT / sequence ids are taken at insert, not at commit: a lower id can commit
 * after a higher one was read. The id cursor reads the last `cursor.lookback_ids` keys up to
 * its watermark again, so the late row is caught on the next poll, not only by the rescan.
 */
describe.each(dialectsUnderTest())('id cursor lookback on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `idlookback_${dialect}`);
    await prepareSample(db, { employees: 5, leaves: 20, overtime: 0, trips: 0, outs: 0, seed: 8, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  const idConfig = (lookbackIds?: number) =>
    sampleConfig(db.url, emu, (raw) => {
      raw.feishu.rate_limit = 1000;
      raw.kinds = { leave: raw.kinds.leave };
      raw.kinds.leave.cursor = { mode: 'id', ...(lookbackIds === undefined ? {} : { lookback_ids: lookbackIds }) };
    });
  const inLedger = (reason: string) => emu.ledger().filter((e) => e.item.reason === reason && e.status === 2).length;

  /** Commit `low` after `high` was read: a real open transaction where the server allows a second writer. */
  async function outOfOrder(low: number, high: number, reason: string, cycle: () => Promise<unknown>): Promise<void> {
    if (dialect === 'sqlite') {
      // One writer at a time: the late row is simply inserted after the higher one was read.
      await db.db('leave_requests').insert(leave(high, `${reason}-high`));
      await cycle();
      await db.db('leave_requests').insert(leave(low, reason));
      return;
    }
    const trx = await db.db.transaction();
    try {
      await trx('leave_requests').insert(leave(low, reason));
      await db.db('leave_requests').insert(leave(high, `${reason}-high`));
      await cycle();
      await trx.commit();
    } catch (err) {
      await trx.rollback();
      throw err;
    }
  }

  it('a lower id committed after a higher one was read reaches Feishu on the next poll', async () => {
    const p = testPipeline(db, idConfig());
    expect((await runCycle(p.deps)).outcome).toBe('ok');
    let seenHigh = 0;
    await outOfOrder(901, 902, 'late-commit', async () => {
      const r = await runCycle(p.deps);
      expect(r.outcome).toBe('ok');
      seenHigh = inLedger('late-commit-high');
    });
    // The higher id was read and moved the watermark past the uncommitted lower one.
    expect(seenHigh).toBe(1);
    expect(inLedger('late-commit')).toBe(0);
    expect((await getWatermark(db.db, t, 'leave'))?.cursor?.key).toBe('902');
    const next = await runCycle(p.deps);
    expect(next.outcome).toBe('ok');
    expect(next.plan.created).toBe(1);
    expect(inLedger('late-commit')).toBe(1);
    // The re-read rows are unchanged: no operation for them, and the watermark stays.
    const idle = await runCycle(p.deps);
    expect(idle.plan.created + idle.plan.revoked).toBe(0);
    expect((await getWatermark(db.db, t, 'leave'))?.cursor?.key).toBe('902');
  });

  it('without the lookback (lookback_ids: 0) the late row waits for the rescan', async () => {
    const p = testPipeline(db, idConfig(0));
    await runCycle(p.deps);
    await outOfOrder(903, 904, 'no-lookback', () => runCycle(p.deps));
    await runCycle(p.deps);
    expect(inLedger('no-lookback-high')).toBe(1);
    expect(inLedger('no-lookback')).toBe(0);
    await runCycle(p.deps, { rescan: true });
    expect(inLedger('no-lookback')).toBe(1);
  });
});
