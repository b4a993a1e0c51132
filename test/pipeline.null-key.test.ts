import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { getWatermark } from '../src/state/watermarks.js';
import { stateTables } from '../src/state/tables.js';
import type { Kind } from '../src/kinds.js';

const t = stateTables('attendance_sync_');

/*
 * Rows whose key is NULL (a query's LEFT JOIN, a broken import): recorded as invalid with a
 * reason naming the key column, never blocking their kind, and never confusing the keyset.
 */
describe.each(dialectsUnderTest())('NULL keys in the source on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `null_key_${dialect}`);
    await prepareSample(db, { employees: 8, leaves: 20, overtime: 0, trips: 0, outs: 0, seed: 13, startDate: '2026-03-02', days: 20, now: DateTime.utc().minus({ hours: 2 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('two keyless rows in one page, and one ending a page: the kind syncs, they are invalid, the keyset ends', async () => {
    // Every leave row shares one updated_at (a bulk update), so pages split inside it.
    const stamp = DateTime.utc().minus({ hours: 1 }).setZone('Asia/Shanghai').toFormat('yyyy-MM-dd HH:mm:ss.SSS');
    await db.db('leave_requests').update({ updated_at: stamp });
    const ids = ((await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').select('id')) as Array<{ id: number }>).map((r) => Number(r.id));
    const keyless = [ids[0]!, ids[1]!, ids[ids.length - 1]!];
    const config = sampleConfig(db.url, emu, (raw) => {
      raw.sync.page_size = 4;
      raw.kinds = { leave: raw.kinds.leave };
      raw.kinds.leave.source.query = String(raw.kinds.leave.source.query).replace(
        'SELECT r.id,',
        `SELECT CASE WHEN r.id IN (${keyless.join(', ')}) THEN NULL ELSE r.id END AS id,`,
      );
    });
    const p = testPipeline(db, config);
    const first = await runCycle(p.deps, { rescan: true });
    expect(first.error).toBeUndefined();
    expect(first.outcome).toBe('ok');

    // Feishu holds every approved row that has a key, each once; the keyless ones are not sent.
    const keyedOut = (await db.db('leave_requests as r').join('employees as e', 'e.id', 'r.employee_id').whereIn('r.id', keyless).select('e.employee_no', 'r.start_at', 'r.end_at')) as Array<Record<string, unknown>>;
    const expected = await expectedFromSource(db.db);
    for (const r of keyedOut) {
      const text = `${String(r.employee_no)}|${String(r.start_at).slice(0, 19)}|${String(r.end_at).slice(0, 19)}`;
      expected.leave.splice(expected.leave.indexOf(text), 1);
    }
    expect(diffLedger(expected, activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });

    const invalid = (await db.db(t.syncRecords).where({ kind: 'leave', status: 'invalid' })) as Array<{ source_key: string; reasons: string }>;
    expect(invalid).toHaveLength(1);
    expect(JSON.parse(invalid[0]!.reasons).join(' ')).toMatch(/column id/);
    expect(p.logs().match(/invalid source row/g)).toHaveLength(1);

    // The watermark stands on the last keyed row; the next cycle reads nothing new and ends.
    const wm = await getWatermark(db.db, t, 'leave' as Kind);
    const lastKeyed = Math.max(...((await db.db('leave_requests').whereNotIn('id', keyless).pluck('id')) as unknown[]).map(Number));
    expect(wm?.cursor?.key).toBe(String(lastKeyed));
    const second = await runCycle(p.deps, { rescan: true });
    expect(second.outcome).toBe('ok');
    expect(second.plan.created + second.plan.revoked).toBe(0);
    expect(p.logs().match(/invalid source row/g)).toHaveLength(1);
  }, 60_000);
});
