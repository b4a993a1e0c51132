import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { sqlTime } from '../src/sample/index.js';
import { getWatermark } from '../src/state/watermarks.js';
import { stateTables } from '../src/state/tables.js';
import { testClock } from './helpers/clock.js';

const t = stateTables('attendance_sync_');

/*
 * The lookback window re-reads rows just behind the watermark for transactions that commit
 * late. After a bulk update every row shares one updated_at, so an idle poll would re-read
 * all of them forever; once the window can hold no more late commits (2 × lookback after
 * the watermark was first seen), idle polls stop re-reading it.
 */
describe.each(dialectsUnderTest())('lookback window on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `lookback_${dialect}`);
    // 200 leaves, one bulk update: every row carries the same updated_at.
    await prepareSample(db, { employees: 10, leaves: 200, overtime: 0, trips: 0, outs: 0, seed: 4, now: DateTime.utc().minus({ minutes: 5 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('re-reads the window while a late commit is possible, catches one, then idle polls read nothing', async () => {
    const config = sampleConfig(db.url, emu, (raw) => {
      raw.sync.lookback_seconds = 1;
      raw.feishu.rate_limit = 1000;
      for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
    });
    const clock = testClock();
    const base = testPipeline(db, config);
    const p = { ...base, deps: { ...base.deps, now: clock.now } };
    const first = await runCycle(p.deps);
    expect(first.plan.read).toBe(200);
    // Right after: the whole bulk lies inside the window and is re-read (and found unchanged).
    const second = await runCycle(p.deps);
    expect(second.plan.read).toBe(200);
    expect(second.plan.created).toBe(0);
    // A transaction that began before the watermark commits late.
    const wm = await getWatermark(db.db, t, 'leave');
    const stamp = String(wm!.cursor?.value);
    await db.db('leave_requests').insert({
      id: 0, // sorts before the watermark's key among rows of the same updated_at
      employee_id: 2,
      leave_type_code: 'ANNUAL',
      start_at: '2026-07-01 09:00:00',
      end_at: '2026-07-01 18:00:00',
      duration: 1,
      reason: '晚提交的事务',
      status: 'approved',
      created_at: stamp,
      updated_at: stamp,
    });
    const third = await runCycle(p.deps);
    expect(third.plan.created).toBe(1);
    expect(emu.ledger().some((e) => e.item.reason === '晚提交的事务')).toBe(true);
    // More than 2 × lookback later a complete re-read settles the window…
    clock.advance(2_200);
    const fourth = await runCycle(p.deps);
    expect(fourth.plan.read).toBe(201);
    // …and from then on an idle poll reads nothing.
    const idle = await runCycle(p.deps);
    expect(idle.plan.read).toBe(0);
    // A new change moves the watermark and is synced as always.
    await db.db('leave_requests').where({ id: 0 }).update({ reason: '再次修改', updated_at: sqlTime(DateTime.utc()) });
    const after = await runCycle(p.deps);
    expect(after.plan.created).toBe(1);
    expect(after.plan.revoked).toBe(1);
    // A new process (no memory of the window) re-reads it once more: safe by default.
    const fresh = testPipeline(db, config);
    expect((await runCycle(fresh.deps)).plan.read).toBeGreaterThanOrEqual(1);
  });
});
