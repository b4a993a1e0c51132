import { DateTime } from 'luxon';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator, type EmulatorOptions } from '../src/emulator/index.js';
import { UNCERTAIN_SWITCHES } from '../src/emulator/options.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { cancelRows, touchRows } from '../src/sample/index.js';
import { requeueSentCreates } from '../src/state/outbox.js';
import { stateTables } from '../src/state/tables.js';
import { KINDS } from '../src/kinds.js';

/*
 * A compact end-to-end sync under every non-default reading of every undocumented Feishu
 * behaviour (the `UNCERTAIN_SWITCHES` of the emulator, plus departed users and a smaller
 * user cap): first sync, edits, cancellations, a resend of everything, a cancel and
 * re-approval with the same content, then the state lost and rebuilt. Stored replies are lost
 * now and then, so lookups run too. Judged by what the emulator holds against the source.
 */

const t = stateTables('attendance_sync_');

type Setting = Partial<EmulatorOptions> | 'departed';
const SETTINGS: Array<[string, Setting]> = [
  ...Object.entries(UNCERTAIN_SWITCHES).flatMap(([key, values]) => (values as readonly unknown[]).slice(1).map((v): [string, Setting] => [`${key}=${JSON.stringify(v)}`, { [key]: v } as Partial<EmulatorOptions>])),
  ['departedUsers=all', 'departed'],
  ['maxQueryUsers=1', { maxQueryUsers: 1 }],
];

describe('the sync under each non-default emulator reading (SQLite)', () => {
  let db: TestDatabase;
  let emu: Emulator | undefined;
  beforeEach(async () => {
    db = await createTestDatabase('sqlite', 'readings_sync');
    await prepareSample(db, { employees: 6, leaves: 16, overtime: 5, trips: 4, outs: 5, seed: 21, now: DateTime.utc().minus({ hours: 1 }) });
  });
  afterEach(async () => {
    await emu?.close();
    await db?.drop();
  });

  it.each(SETTINGS)('%s', async (_label, setting) => {
    const e = await startEmulator({ strict: true, rateLimit: 1000, faults: { 'stored-then-failed': 0.08 }, seed: 3, ...(setting === 'departed' ? {} : setting) });
    emu = e;
    if (setting === 'departed') e.setOptions({ departedUsers: (await db.db('employees').pluck('employee_no')) as string[] });
    const p = testPipeline(db, sampleConfig(db.url, e));
    const settle = async () => {
      for (let i = 0; i < 6; i++) {
        const r = await runCycle(p.deps);
        expect(r.error).toBeUndefined();
        if (r.outboxDepth === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    // Overlapping leaves refused: the sample's overlaps fail (one by one, with Feishu's answer); nothing else may.
    const check = async () => {
      const failed = (await db.db(t.syncRecords).whereIn('status', ['failed', 'dead']).select('operation', 'feishu_msg', 'kind')) as Array<{ operation: string; feishu_msg: string | null; kind: string }>;
      const overlaps = failed.filter((f) => f.operation === 'create' && f.kind === 'leave' && /conflicts with approval/.test(f.feishu_msg ?? ''));
      if (setting !== 'departed' && setting.overlappingLeaves === 'refuse') expect(overlaps).toEqual(failed);
      else expect(failed).toEqual([]);
      const diff = diffLedger(await expectedFromSource(db.db), activeInLedger(e.ledger()));
      expect(diff).toEqual({ missing: overlaps.length, duplicated: 0, unexpected: 0 });
    };

    await settle();
    await check();

    const leaves = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(6).pluck('id')).map(Number);
    const overtime = (await db.db('overtime_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(2).pluck('id')).map(Number);
    const trips = (await db.db('trip_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(1).pluck('id')).map(Number);
    await touchRows(db.db, 'leave_requests', leaves.slice(0, 3), { reason: '改期：家中有事' });
    await touchRows(db.db, 'overtime_requests', overtime.slice(0, 1), { reason: '项目上线' });
    await cancelRows(db.db, 'leave_requests', leaves.slice(3, 5));
    await cancelRows(db.db, 'trip_requests', trips);
    await settle();
    await check();

    // Resend everything already sent, with the same keys: Feishu answers as the reading says.
    for (const kind of KINDS) await requeueSentCreates(db.db, t, { kind, from: '2000-01-01', to: '2100-12-31' });
    await settle();
    await check();

    // Approved again with the same content: a new generation. Then the state is lost and
    // rebuilt from scratch, meeting generation 0's withdrawn approvals.
    await touchRows(db.db, 'leave_requests', leaves.slice(3, 5), { status: 'approved' });
    await settle();
    await check();
    for (const table of [t.syncRecords, t.records, t.watermarks]) await db.db(table).del();
    const created = e.stats().created;
    await settle();
    await check();
    expect(e.stats().created).toBe(created); // nothing stored twice
  });
});
