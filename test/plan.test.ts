import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { expectLedgerMatchesSource, prepareSample, sampleConfig, testPipeline, type TestPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { cancelRows, touchRows } from '../src/sample/index.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');

interface OpRow {
  id: number | string;
  source_key: string;
  version: string;
  operation: string;
  status: string;
  revokes_id: number | string | null;
}

/*
 * Planning (plan/plan.ts), observed in the outbox with sending switched off: a new row plans a
 * create; a changed row a revoke of the approval Feishu holds plus a create of the new version;
 * a cancelled row a revoke alone; an unchanged row nothing. Sending then brings Feishu level.
 */
describe.each(dialectsUnderTest())('planning on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  let p: TestPipeline;
  let approved: number[];
  const ops = async (key?: number): Promise<OpRow[]> => {
    const q = db.db(t.syncRecords).orderBy('id').select('id', 'source_key', 'version', 'operation', 'status', 'revokes_id');
    return (await (key === undefined ? q : q.where({ source_key: String(key) }))) as OpRow[];
  };

  beforeAll(async () => {
    db = await createTestDatabase(dialect, `plan_${dialect}`);
    await prepareSample(db, { employees: 5, leaves: 12, overtime: 0, trips: 0, outs: 0, seed: 23, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
    p = testPipeline(
      db,
      sampleConfig(db.url, emu, (raw) => {
        for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
      }),
    );
    approved = ((await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').select('id')) as Array<{ id: number }>).map((r) => Number(r.id));
    expect(approved.length).toBeGreaterThanOrEqual(3);
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('a new approved row plans one pending create, and nothing else', async () => {
    const r = await runCycle(p.deps, { send: false });
    expect(r.plan.created).toBe(approved.length);
    expect(r.plan.revoked).toBe(0);
    const all = await ops();
    expect(all.filter((o) => o.operation === 'create').map((o) => Number(o.source_key)).sort((a, b) => a - b)).toEqual(approved);
    expect(all.every((o) => o.operation === 'create' && o.status === 'pending')).toBe(true);
    expect(emu.ledger()).toHaveLength(0);
    // Sending them makes Feishu hold exactly the approved rows.
    expect((await runCycle(p.deps)).outcome).toBe('ok');
    await expectLedgerMatchesSource(db, emu);
  });

  it('an unchanged row plans nothing', async () => {
    const before = await ops();
    const r = await runCycle(p.deps, { send: false });
    expect(r.plan.created).toBe(0);
    expect(r.plan.revoked).toBe(0);
    expect(await ops()).toEqual(before);
  });

  it('a changed row plans a revoke of the sent create and a create of the new version', async () => {
    const key = approved[0]!;
    const [sent] = await ops(key);
    expect(sent).toMatchObject({ operation: 'create', status: 'sent' });
    await touchRows(db.db, 'leave_requests', [key], { reason: '改期：计划有变' });
    const r = await runCycle(p.deps, { send: false });
    expect(r.plan.created).toBe(1);
    expect(r.plan.revoked).toBe(1);
    const mine = await ops(key);
    expect(mine).toHaveLength(3);
    const revoke = mine.find((o) => o.operation === 'revoke')!;
    const create = mine.find((o) => o.operation === 'create' && Number(o.id) !== Number(sent!.id))!;
    expect(Number(revoke.revokes_id)).toBe(Number(sent!.id));
    expect(revoke.status).toBe('pending');
    expect(create).toMatchObject({ status: 'pending' });
    expect(create.version).not.toBe(sent!.version);
    // The revoke is sent before the new create: Feishu ends with the new version only.
    expect((await runCycle(p.deps)).outcome).toBe('ok');
    await expectLedgerMatchesSource(db, emu);
    expect(emu.ledger().filter((e) => e.status === 2 && e.item.reason === '改期：计划有变')).toHaveLength(1);
  });

  it('a cancelled row plans a revoke alone', async () => {
    const key = approved[1]!;
    const [sent] = await ops(key);
    expect(sent).toMatchObject({ operation: 'create', status: 'sent' });
    await cancelRows(db.db, 'leave_requests', [key]);
    const r = await runCycle(p.deps, { send: false });
    expect(r.plan.created).toBe(0);
    expect(r.plan.revoked).toBe(1);
    const mine = await ops(key);
    expect(mine.map((o) => `${o.operation}:${o.status}`)).toEqual(['create:sent', 'revoke:pending']);
    expect(Number(mine[1]!.revokes_id)).toBe(Number(sent!.id));
    expect((await runCycle(p.deps)).outcome).toBe('ok');
    await expectLedgerMatchesSource(db, emu);
  });
});
