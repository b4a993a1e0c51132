import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample, sampleConfig, testPipeline, type TestPipeline } from './helpers/pipeline.js';
import { expireLeases } from './helpers/clock.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { Sender } from '../src/send/sender.js';
import { claimDue } from '../src/state/outbox.js';
import { stateTables } from '../src/state/tables.js';
import { OPERATION_JITTER_FLOOR } from '../src/retryPolicy.js';

const t = stateTables('attendance_sync_');

interface OpRow {
  id: number | string;
  status: string;
  attempts: number | string;
  user_id: string | null;
  approval_id: string | null;
  lease_owner: string | null;
}

/*
 * The sender (send/sender.ts) against the emulator over HTTP: it claims due operations, records
 * a success with Feishu's approval id, a permanent refusal as failed at once, a transient error
 * as retried until `max_attempts` makes it dead, and leaves alone what another owner holds under
 * a live lease until that lease runs out.
 */
describe.each(dialectsUnderTest())('sender on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  let p: TestPipeline;
  const ops = async (): Promise<OpRow[]> => (await db.db(t.syncRecords).orderBy('id').select('id', 'status', 'attempts', 'user_id', 'approval_id', 'lease_owner')) as OpRow[];
  const sender = (owner: string, maxAttempts = 3) =>
    new Sender({
      state: db.db,
      t,
      client: p.deps.client,
      employeeType: p.deps.config.feishu.employee_type,
      namespace: p.deps.config.sync.namespace,
      owner,
      concurrency: 2,
      retry: { maxAttempts, baseMs: 1, capMs: 5, floor: OPERATION_JITTER_FLOOR },
      leaseMs: 30_000,
      logger: p.deps.logger,
    });
  const plan = async () => {
    await db.db(t.syncRecords).delete();
    await db.db(t.records).delete();
    await db.db(t.watermarks).delete();
    emu.reset();
    expect((await runCycle(p.deps, { send: false })).plan.created).toBeGreaterThanOrEqual(4);
  };

  beforeAll(async () => {
    db = await createTestDatabase(dialect, `sender_${dialect}`);
    await prepareSample(db, { employees: 4, leaves: 10, overtime: 0, trips: 0, outs: 0, seed: 31, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
    p = testPipeline(
      db,
      sampleConfig(db.url, emu, (raw) => {
        for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
      }),
    );
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('claims hand each due operation to one owner only', async () => {
    await plan();
    const total = (await ops()).length;
    const a = await claimDue(db.db, t, { owner: 'owner-a', limit: 2, leaseMs: 30_000 });
    const b = await claimDue(db.db, t, { owner: 'owner-b', limit: total, leaseMs: 30_000 });
    expect(a).toHaveLength(2);
    expect(b).toHaveLength(total - 2);
    expect(new Set([...a, ...b].map((o) => o.id)).size).toBe(total);
    expect(await claimDue(db.db, t, { owner: 'owner-c', limit: total, leaseMs: 30_000 })).toEqual([]);
    const rows = await ops();
    expect(rows.every((r) => r.status === 'sending')).toBe(true);
    expect(rows.filter((r) => r.lease_owner === 'owner-a')).toHaveLength(2);
  });

  it('a success is recorded as sent with the approval id Feishu gave', async () => {
    await plan();
    const counts = await sender('sender-ok').drain();
    const rows = await ops();
    expect(counts.sent).toBe(rows.length);
    expect(rows.every((r) => r.status === 'sent' && typeof r.approval_id === 'string' && r.approval_id.length > 0)).toBe(true);
    const held = new Set(emu.ledger().map((e) => e.approvalId));
    expect(rows.every((r) => held.has(String(r.approval_id)))).toBe(true);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  });

  it('a permanent refusal (user unknown to Feishu) fails that operation at once; the others are sent', async () => {
    await plan();
    const users = [...new Set((await ops()).map((r) => String(r.user_id)))].sort();
    expect(users.length).toBeGreaterThanOrEqual(2);
    const [unknown, ...known] = users;
    emu.setOptions({ users: known });
    try {
      const counts = await sender('sender-perm').drain();
      const rows = await ops();
      const refused = rows.filter((r) => r.user_id === unknown);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused.every((r) => r.status === 'failed' && Number(r.attempts) === 1)).toBe(true);
      expect(counts.failed).toBe(refused.length);
      expect(rows.filter((r) => r.user_id !== unknown).every((r) => r.status === 'sent')).toBe(true);
    } finally {
      emu.setOptions({ users: null });
    }
  });

  it('a transient error is retried until max_attempts, then the operation is dead', async () => {
    await plan();
    emu.setOptions({ faults: { '5xx': 1 } });
    try {
      const s = sender('sender-dead', 2);
      for (let i = 0; i < 20 && (await ops()).some((r) => r.status !== 'dead'); i++) {
        await s.drain();
        await new Promise((r) => setTimeout(r, 20));
      }
      const rows = await ops();
      expect(rows.map((r) => r.status)).toEqual(rows.map(() => 'dead'));
      expect(rows.every((r) => Number(r.attempts) === 2)).toBe(true);
      expect(emu.ledger()).toHaveLength(0);
    } finally {
      emu.setOptions({ faults: {} });
    }
  });

  it("another owner's live lease is left alone; once it runs out the operation is reclaimed and sent once", async () => {
    await plan();
    const total = (await ops()).length;
    const taken = await claimDue(db.db, t, { owner: 'crashed-sender', limit: 1, leaseMs: 60_000 });
    expect(taken).toHaveLength(1);
    const first = await sender('sender-lease').drain();
    expect(first.sent).toBe(total - 1);
    expect((await ops()).find((r) => Number(r.id) === taken[0]!.id)).toMatchObject({ status: 'sending', lease_owner: 'crashed-sender' });

    expect((await expireLeases(db.db, t)).operations).toBe(1);
    const second = await sender('sender-lease').drain();
    expect(second.sent).toBe(1);
    expect((await ops()).every((r) => r.status === 'sent')).toBe(true);
    expect(Object.values(emu.posts()).filter((n) => n > 1)).toEqual([]);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  });
});
