import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';

/**
 * A source whose timestamps can't be trusted: an id-only cursor finds inserts, and the
 * rescan of a window of effective dates finds edits and hard deletes (by version hash and by
 * keys that vanished).
 */
describe.each(dialectsUnderTest())('id cursor + rescan on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `idcursor_${dialect}`);
    const today = DateTime.now().setZone('Asia/Shanghai').startOf('day');
    await prepareSample(db, { employees: 10, leaves: 40, overtime: 0, trips: 0, outs: 0, seed: 21, startDate: today.minus({ days: 20 }).toFormat('yyyy-MM-dd'), days: 30 });
    emu = await startEmulator({ strict: true, rateLimit: 500 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('inserts, edits and hard deletes all reach the ledger', async () => {
    const config = sampleConfig(db.url, emu, (raw) => {
      raw.feishu.rate_limit = 200;
      raw.kinds = { leave: raw.kinds.leave };
      // No id lookback: its window (the last N ids) would re-read these 40 rows and see the edits itself.
      raw.kinds.leave.cursor = { mode: 'id', lookback_ids: 0 };
    });
    const p = testPipeline(db, config);
    const first = await runCycle(p.deps);
    expect(first.outcome).toBe('ok');
    const expected = async () => ({ ...(await expectedFromSource(db.db)), overtime: [], trip: [], out: [] });
    expect(diffLedger(await expected(), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });

    // insert (new id), edit without touching any timestamp, hard delete
    const ids = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(4).pluck('id')) as number[];
    await db.db('leave_requests').insert({
      id: 900,
      employee_id: 1,
      leave_type_code: 'ANNUAL',
      start_at: DateTime.now().setZone('Asia/Shanghai').toFormat('yyyy-MM-dd 09:00:00'),
      end_at: DateTime.now().setZone('Asia/Shanghai').toFormat('yyyy-MM-dd 18:00:00'),
      duration: 1,
      reason: '新插入',
      status: 'approved',
      created_at: '2000-01-01 00:00:00',
      updated_at: '2000-01-01 00:00:00',
    });
    await db.db('leave_requests').whereIn('id', ids.slice(0, 2)).update({ reason: '静默修改' });
    await db.db('leave_requests').whereIn('id', ids.slice(2, 4)).delete();

    const plain = await runCycle(p.deps);
    expect(plain.plan.created).toBe(1); // the id cursor sees only the insert
    const rescan = await runCycle(p.deps, { rescan: true });
    expect(rescan.plan.created).toBe(2);
    expect(rescan.plan.revoked).toBe(4); // two edits and two hard deletes
    expect(diffLedger(await expected(), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
    expect(emu.ledger().filter((e) => e.item.reason === '静默修改' && e.status === 2)).toHaveLength(2);
  });
});
