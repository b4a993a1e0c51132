import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { applyRetention } from '../src/state/retention.js';
import { recordLookup } from '../src/state/lookups.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');
const DAY = 86_400_000;

describe.each(dialectsUnderTest())('retention on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `retention_${dialect}`);
    await prepareSample(db, { employees: 3, leaves: 0, overtime: 0, trips: 0, outs: 0 });
    emu = await startEmulator({ strict: true });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });
  beforeEach(async () => {
    await db.db(t.syncRecords).del();
    await db.db(t.runs).del();
  });

  let seq = 0;
  async function op(o: { key: string; status: string; operation?: string; ageDays: number; revokesId?: number; approvalId?: string }): Promise<number> {
    const at = Date.now() - o.ageDays * DAY;
    const row = {
      kind: 'leave',
      source_key: o.key,
      version: `v${++seq}`,
      generation: 0,
      operation: o.operation ?? 'create',
      status: o.status,
      attempts: 1,
      next_attempt_at: at,
      revokes_id: o.revokesId ?? null,
      approval_id: o.approvalId ?? null,
      created_at: at,
      updated_at: at,
    };
    await db.db(t.syncRecords).insert(row);
    const got = (await db.db(t.syncRecords).where({ source_key: o.key, version: row.version }).first('id')) as { id: number | string };
    return Number(got.id);
  }

  it('deletes old runs and finished operations, never a sent create, anything unfinished or anything recent', async () => {
    // Old and finished: deleted.
    const gone = [
      await op({ key: 'a', status: 'superseded', ageDays: 200 }),
      await op({ key: 'b', status: 'invalid', ageDays: 200 }),
    ];
    const revokedCreate = await op({ key: 'c', status: 'revoked', ageDays: 200, approvalId: 'A1' });
    gone.push(revokedCreate, await op({ key: 'c', status: 'sent', operation: 'revoke', ageDays: 200, revokesId: revokedCreate }));
    // Kept: the live approval of a record (however old), unfinished work, recent history.
    const kept = [
      await op({ key: 'd', status: 'sent', ageDays: 400, approvalId: 'A2' }),
      await op({ key: 'e', status: 'failed', ageDays: 200 }),
      await op({ key: 'f', status: 'dead', operation: 'revoke', ageDays: 200 }),
      await op({ key: 'g', status: 'pending', ageDays: 200 }),
      await op({ key: 'h', status: 'sending', ageDays: 200 }),
      await op({ key: 'i', status: 'revoked', ageDays: 10, approvalId: 'A3' }),
      await op({ key: 'j', status: 'superseded', ageDays: 89 }),
    ];
    const now = Date.now();
    await db.db(t.runs).insert([
      { type: 'cycle', started_at: now - 120 * DAY, finished_at: now - 120 * DAY, outcome: 'ok' },
      { type: 'cycle', started_at: now - 100 * DAY, outcome: 'running' },
      { type: 'cycle', started_at: now - 30 * DAY, finished_at: now - 30 * DAY, outcome: 'ok' },
    ]);

    const counts = await applyRetention(db.db, t, { retentionDays: 90 });
    expect(counts).toEqual({ runs: 2, operations: gone.length });
    const left = ((await db.db(t.syncRecords).select('id').orderBy('id')) as Array<{ id: number | string }>).map((r) => Number(r.id));
    expect(left).toEqual(kept);
    const runs = (await db.db(t.runs).select('started_at')) as Array<{ started_at: number | string }>;
    expect(runs.map((r) => Number(r.started_at))).toEqual([now - 30 * DAY]);
    // 0 keeps everything.
    await op({ key: 'k', status: 'superseded', ageDays: 1000 });
    expect(await applyRetention(db.db, t, { retentionDays: 0 })).toEqual({ runs: 0, operations: 0 });
  });

  it('drops stored Feishu lookups older than the cut-off, keeps recent ones', async () => {
    await db.db(t.lookups).del();
    const now = Date.now();
    const lookup = (id: string, ageDays: number) => recordLookup(db.db, t, { kind: 'leave', userId: 'u1', idempotentId: id, approvalId: null, statuses: [2], found: null, at: now - ageDays * DAY });
    await lookup('old', 120);
    await lookup('recent', 10);
    await applyRetention(db.db, t, { retentionDays: 90 });
    expect(await db.db(t.lookups).pluck('subject')).toEqual(['recent']);
  });

  it('deletes in bounded batches per call, and runs during cycles', async () => {
    for (let i = 0; i < 25; i++) await op({ key: `s${i}`, status: 'superseded', ageDays: 100 });
    const first = await applyRetention(db.db, t, { retentionDays: 90, batchSize: 4, maxRows: 10 });
    expect(first.operations).toBe(10);
    expect(Number(((await db.db(t.syncRecords).count({ n: '*' }).first()) as { n: number | string }).n)).toBe(15);
    // A cycle goes on where the last one stopped.
    await db.db(t.runs).insert({ type: 'cycle', started_at: Date.now() - 365 * DAY, finished_at: Date.now() - 365 * DAY, outcome: 'ok' });
    const p = testPipeline(db, sampleConfig(db.url, emu));
    const r = await runCycle(p.deps, { send: false });
    expect(r.outcome).toBe('ok');
    expect(Number(((await db.db(t.syncRecords).count({ n: '*' }).first()) as { n: number | string }).n)).toBe(0);
    const runs = (await db.db(t.runs).select('started_at')) as Array<{ started_at: number | string }>;
    expect(runs.every((x) => Number(x.started_at) > Date.now() - DAY)).toBe(true);
    expect(runs).toHaveLength(1); // the cycle's own run
  });
});
