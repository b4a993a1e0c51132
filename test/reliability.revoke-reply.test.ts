import { DateTime } from 'luxon';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { expectLedgerMatchesSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { cancelRows } from '../src/sample/index.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');

/*
 * Feishu answers a revoke with code 0 but no status, and the approval stays in force. The
 * sync table must not say revoked: the revoke is retried until Feishu confirms it.
 */
describe('a revoke answered without a status (sqlite)', () => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase('sqlite', 'revoke_reply');
    await prepareSample(db, { employees: 5, leaves: 10, overtime: 0, trips: 0, outs: 0, seed: 29, now: DateTime.utc().minus({ hours: 2 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('is not counted as done; once Feishu answers properly the cancellation reaches it', async () => {
    const config = sampleConfig(db.url, emu, (raw) => {
      raw.kinds = { leave: raw.kinds.leave };
      raw.feishu.max_attempts = 50;
    });
    const p = testPipeline(db, config);
    expect((await runCycle(p.deps)).outcome).toBe('ok');
    const ids = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(2).pluck('id')) as number[];
    await cancelRows(db.db, 'leave_requests', ids);

    emu.setOptions({ revokeReply: 'no-status-unapplied' });
    const hidden = await runCycle(p.deps);
    expect(hidden.send.sent).toBe(0);
    const revokes = (await db.db(t.syncRecords).where({ operation: 'revoke' })) as Array<{ status: string; error_code: string | null }>;
    expect(revokes).toHaveLength(2);
    expect(revokes.every((r) => r.status === 'pending' && r.error_code === 'FEISHU_BAD_RESPONSE')).toBe(true);
    expect(await db.db(t.syncRecords).where({ operation: 'create', status: 'revoked' }).count({ n: '*' }).first()).toMatchObject({ n: 0 });

    emu.setOptions({ revokeReply: 'full' });
    await db.db(t.syncRecords).where({ operation: 'revoke' }).update({ next_attempt_at: 0 });
    expect((await runCycle(p.deps)).outcome).toBe('ok');
    expect(await db.db(t.syncRecords).where({ operation: 'revoke', status: 'sent' }).count({ n: '*' }).first()).toMatchObject({ n: 2 });
    await expectLedgerMatchesSource(db, emu);
  }, 60_000);
});
