import { retryPolicyFromConfig } from '../src/retryPolicy.js';
import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { expectLedgerMatchesSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { Sender } from '../src/send/sender.js';
import { statusCounts } from '../src/state/outbox.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');

/*
 * A call that outlasts its operation's lease (a slow Feishu, rate-limit waits, retries inside
 * the client) must not make the sender claim that operation again and post it a second time.
 */
describe.each(dialectsUnderTest())('leases of operations in flight on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `sender_lease_${dialect}`);
    await prepareSample(db, { employees: 6, leaves: 12, overtime: 0, trips: 0, outs: 0, seed: 8, startDate: '2026-03-02', days: 10, now: DateTime.utc().minus({ hours: 2 }) });
    // Every answer takes longer than the lease.
    emu = await startEmulator({ strict: true, rateLimit: 1000, latencyMs: 700 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('a call longer than the lease is posted once: the sender renews its leases and never re-claims its own', async () => {
    const config = sampleConfig(db.url, emu, (raw) => (raw.feishu.timeout_ms = 5_000));
    const p = testPipeline(db, config);
    await runCycle(p.deps, { send: false });
    const queued = (await db.db(t.syncRecords).where({ status: 'pending' }).count({ n: '*' }).first()) as { n: number | string };
    expect(Number(queued.n)).toBeGreaterThanOrEqual(10);
    const f = config.feishu;
    const sender = new Sender({
      state: db.db,
      t,
      client: p.deps.client,
      employeeType: f.employee_type,
      namespace: config.sync.namespace,
      owner: p.deps.owner,
      concurrency: 3,
      retry: retryPolicyFromConfig(f).operation,
      leaseMs: 250,
      logger: p.deps.logger,
    });
    const counts = await sender.drain();
    expect(counts.sent).toBe(Number(queued.n));
    const posts = Object.values(emu.posts());
    expect(posts).toHaveLength(Number(queued.n));
    expect(posts.filter((n) => n > 1)).toEqual([]);
    expect(emu.stats().calls.create).toBe(Number(queued.n));
    expect((await statusCounts(db.db, t)).filter((c) => c.status !== 'sent')).toEqual([]);
    await expectLedgerMatchesSource(db, emu);
  }, 60_000);
});
