import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { cancelRows, touchRows } from '../src/sample/index.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');

/*
 * A record cancelled and approved again with the same content is re-created under a new
 * generation's key (the first key's approval is withdrawn for good). If the state is then
 * lost, planning from scratch starts at generation 0 again, whose key Feishu answers with
 * "already exists" for a withdrawn approval: the sender moves on to the next generation and
 * finds the live approval, instead of failing and forgetting it.
 */
describe.each(dialectsUnderTest())('replay after a cancel and re-approval on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `replay_generation_${dialect}`);
    await prepareSample(db, { employees: 8, leaves: 30, overtime: 0, trips: 0, outs: 0, seed: 8, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('re-finds the live approval of a later generation, and a later cancellation still revokes it', async () => {
    const config = sampleConfig(db.url, emu, (raw) => {
      for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
    });
    const p = testPipeline(db, config);
    expect((await runCycle(p.deps)).outcome).toBe('ok');
    const ids = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(3).pluck('id')).map(Number);
    await cancelRows(db.db, 'leave_requests', ids);
    expect((await runCycle(p.deps)).plan.revoked).toBe(3);
    // Approved again, exactly as before: same content, same version, a new generation.
    await touchRows(db.db, 'leave_requests', ids, { status: 'approved' });
    const again = await runCycle(p.deps);
    expect(again.plan.created).toBe(3);
    const gen1 = (await db.db(t.syncRecords).whereIn('source_key', ids.map(String)).andWhere({ operation: 'create', generation: 1, status: 'sent' })) as Array<{ approval_id: string }>;
    expect(gen1).toHaveLength(3);

    // The state is lost; a full re-read plans generation 0 for every row again.
    for (const table of [t.syncRecords, t.records, t.watermarks]) await db.db(table).del();
    const created = emu.stats().created;
    const replay = await runCycle(p.deps);
    expect(replay.send.failed + replay.send.dead).toBe(0);
    for (let i = 0; i < 3 && (await runCycle(p.deps)).outboxDepth > 0; i++);
    expect(emu.stats().created).toBe(created); // nothing stored twice
    expect(await db.db(t.syncRecords).whereIn('status', ['pending', 'sending', 'failed', 'dead'])).toHaveLength(0);
    const rebuilt = (await db.db(t.syncRecords).whereIn('source_key', ids.map(String)).andWhere({ operation: 'create', status: 'sent' })) as Array<{ approval_id: string; generation: number | string }>;
    expect(rebuilt.map((r) => r.approval_id).sort()).toEqual(gen1.map((r) => r.approval_id).sort());
    expect(rebuilt.every((r) => Number(r.generation) === 1)).toBe(true);
    expect(p.logs()).toMatch(/create moved to the next generation/);

    // Because the sync table knows the live approvals again, cancelling revokes them.
    await cancelRows(db.db, 'leave_requests', ids);
    expect((await runCycle(p.deps)).plan.revoked).toBe(3);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  });
});
