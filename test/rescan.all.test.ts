import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { ALL_DATES_FROM, rescanWindow } from '../src/pipeline/rescanWindow.js';

/*
 * `sync.rescan_window_days: all` rescans every effective date: for small tables whose old
 * records still change (a correction years later, a hard delete), beyond the 400-day cap.
 */
describe.each(dialectsUnderTest())('rescan_window_days: all on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `rescanall_${dialect}`);
    // Three years of history, the oldest rows far beyond any day-counted window.
    const start = DateTime.now().setZone('Asia/Shanghai').minus({ years: 3 }).startOf('day');
    await prepareSample(db, { employees: 8, leaves: 60, overtime: 0, trips: 0, outs: 0, seed: 17, approvedShare: 1, startDate: start.toFormat('yyyy-MM-dd'), days: 200 });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('the window reaches back to the first effective date', () => {
    const w = rescanWindow(sampleConfig(db.url, emu, (raw) => (raw.sync.rescan_window_days = 'all')));
    expect(w.from).toBe(ALL_DATES_FROM);
  });

  it('a 400-day rescan misses changes to old records; `all` syncs them', async () => {
    const config = (days: number | 'all') =>
      sampleConfig(db.url, emu, (raw) => {
        raw.feishu.rate_limit = 1000;
        raw.kinds = { leave: raw.kinds.leave };
        raw.kinds.leave.cursor = { mode: 'id', lookback_ids: 0 };
        raw.sync.rescan_window_days = days;
      });
    const p400 = testPipeline(db, config(400));
    expect((await runCycle(p400.deps)).outcome).toBe('ok');
    const diff = async () => diffLedger({ ...(await expectedFromSource(db.db)), overtime: [], trip: [], out: [] }, activeInLedger(emu.ledger()));
    expect(await diff()).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });

    // Two old records change without any timestamp: one is cancelled, one is deleted outright.
    const old = (await db.db('leave_requests').orderBy('start_at').limit(2).pluck('id')) as number[];
    await db.db('leave_requests').where({ id: old[0] }).update({ status: 'cancelled' });
    await db.db('leave_requests').where({ id: old[1] }).delete();

    expect((await runCycle(p400.deps, { rescan: true })).plan.revoked).toBe(0);
    expect(await diff()).toEqual({ missing: 0, duplicated: 0, unexpected: 2 });

    const all = await runCycle(testPipeline(db, config('all')).deps, { rescan: true });
    expect(all.outcome).toBe('ok');
    expect(all.plan.revoked).toBe(2);
    expect(await diff()).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  });
});
