import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { Metrics } from '../src/metrics/metrics.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { sampleNow, touchRows } from '../src/sample/index.js';
import { getWatermark } from '../src/state/watermarks.js';
import { stateTables } from '../src/state/tables.js';
import { collectStatus, renderStatus } from '../src/state/status.js';

const t = stateTables('attendance_sync_');

/*
 * An updated_at far in the future (a 2099 typo, an application server's fast clock) must not
 * carry the watermark past every later change: it is held back and reported, and the changes
 * after it keep flowing.
 */
describe.each(dialectsUnderTest())('a future cursor time on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `future_cursor_${dialect}`);
    await prepareSample(db, { employees: 8, leaves: 20, overtime: 0, trips: 0, outs: 0, seed: 17, startDate: DateTime.utc().minus({ days: 20 }).toISODate()!, now: DateTime.utc().minus({ hours: 2 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('is held back and reported; later changes still sync; the rescan syncs the row itself', async () => {
    const config = sampleConfig(db.url, emu, (raw) => {
      raw.kinds = { leave: raw.kinds.leave };
      raw.sync.page_size = 5;
      raw.sync.rescan_window_days = 400;
    });
    const p = testPipeline(db, config);
    p.deps = { ...p.deps, metrics: new Metrics() };
    expect((await runCycle(p.deps)).outcome).toBe('ok');
    const ids = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').pluck('id')) as number[];
    const [typo, later, evenLater] = ids.map(Number);

    await db.db('leave_requests').where({ id: typo }).update({ reason: '未来时间', updated_at: '2099-01-01 00:00:00.000000' });
    await touchRows(db.db, 'leave_requests', [later!], { reason: '之后的修改' });
    const second = await runCycle(p.deps);
    expect(second.outcome).toBe('ok');
    expect(second.plan.future).toBe(1);
    expect(emu.ledger().some((e) => e.status === 2 && e.item.reason === '之后的修改')).toBe(true);
    expect(emu.ledger().some((e) => e.item.reason === '未来时间')).toBe(false);
    const held = p.logs().split('\n').filter((l) => l.includes('beyond the source clock'));
    expect(held).toHaveLength(1);
    expect(held[0]).toContain(`"sourceKey":${typo}`);
    const wm = await getWatermark(db.db, t, 'leave');
    expect(wm?.cursor?.value?.startsWith('2099')).toBe(false);
    expect(second.watermarkLagSeconds.leave).toBeGreaterThanOrEqual(0);
    expect(second.watermarkLagSeconds.leave).toBeLessThan(3_600);
    expect(await p.deps.metrics!.registry.getSingleMetricAsString('attendance_sync_future_rows')).toMatch(/attendance_sync_future_rows\{kind="leave"\} 1/);

    // A change after the typo is still read: the watermark never jumped to 2099.
    await touchRows(db.db, 'leave_requests', [evenLater!], { reason: '再之后的修改' }, sampleNow().plus({ seconds: 1 }));
    const third = await runCycle(p.deps);
    expect(third.plan.future).toBe(1);
    expect(emu.ledger().some((e) => e.status === 2 && e.item.reason === '再之后的修改')).toBe(true);
    // Once per row and cycle.
    expect(p.logs().split('\n').filter((l) => l.includes('beyond the source clock'))).toHaveLength(2);

    // status shows the held rows of the last run.
    expect(renderStatus(await collectStatus(db.db, t))).toMatch(/#\d+ cycle .*held back \(future cursor\) 1/);

    // The rescan reads by effective date: the row's content reaches Feishu all the same.
    await runCycle(p.deps, { rescan: true });
    expect(emu.ledger().some((e) => e.status === 2 && e.item.reason === '未来时间')).toBe(true);
    const wmAfter = await getWatermark(db.db, t, 'leave');
    expect(wmAfter?.cursor?.value?.startsWith('2099')).toBe(false);
  }, 60_000);
});
