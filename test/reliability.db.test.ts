import { DateTime } from 'luxon';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { expectLedgerMatchesSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { connect, type Knex } from '../src/db/connect.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { describeError } from '../src/errors.js';
import { runCycle } from '../src/pipeline/cycle.js';
import type { PipelineDeps } from '../src/pipeline/deps.js';
import { touchRows } from '../src/sample/index.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');
const SERVERS = (['pg', 'mysql'] as const).filter((d) => process.env.CI === 'true' || !(process.env.ATTENDANCE_SYNC_TEST_SKIP ?? '').split(',').includes(d));

/** The session id of the one connection in a pool of one. */
async function sessionId(db: Knex, dialect: 'pg' | 'mysql'): Promise<number> {
  if (dialect === 'pg') return Number(((await db.raw('SELECT pg_backend_pid() AS id')) as { rows: Array<{ id: number }> }).rows[0]!.id);
  return Number(((await db.raw('SELECT CONNECTION_ID() AS id')) as [Array<{ id: number }>])[0][0]!.id);
}

async function killSession(admin: Knex, dialect: 'pg' | 'mysql', id: number): Promise<void> {
  if (dialect === 'pg') await admin.raw('SELECT pg_terminate_backend(?)', [id]);
  else await admin.raw(`KILL ${Number(id)}`);
}

describe.each(SERVERS)('database faults on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `reliability_db_${dialect}`);
    await prepareSample(db, { employees: 20, leaves: 400, overtime: 100, trips: 50, outs: 100, seed: 21, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('the source connection killed in the middle of a query: the cycle fails with one clear line, the next one recovers; nothing lost or doubled', async () => {
    const config = sampleConfig(db.url, emu, (raw) => {
      raw.sync.page_size = 20;
      raw.feishu.rate_limit = 1000;
    });
    const p = testPipeline(db, config);
    const source = connect(db.url, { poolMax: 1 });
    const locker = connect(db.url, { poolMax: 1 });
    try {
      const deps: PipelineDeps = { ...p.deps, source };
      const victim = await sessionId(source, dialect);
      // Leave and overtime extract freely; the trip table is locked, so the source's query on
      // it waits inside the server until its session is killed.
      const conn = await locker.client.acquireConnection();
      const lockSql = dialect === 'pg' ? 'LOCK TABLE trip_requests IN ACCESS EXCLUSIVE MODE' : 'LOCK TABLES trip_requests WRITE';
      await locker.raw(dialect === 'pg' ? 'BEGIN' : 'SELECT 1').connection(conn);
      await locker.raw(lockSql).connection(conn);
      const cycle = runCycle(deps);
      const waiting = dialect === 'pg' ? "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ? AND wait_event_type = 'Lock'" : "SELECT count(*) AS n FROM information_schema.processlist WHERE id = ? AND state LIKE '%lock%'";
      const deadline = Date.now() + 15_000;
      for (;;) {
        const res = (await db.db.raw(waiting, [victim])) as { rows?: Array<{ n: string | number }> } & Array<Array<{ n: string | number }>>;
        const n = Number(dialect === 'pg' ? res.rows![0]!.n : res[0]![0]!.n);
        if (n > 0 || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await killSession(db.db, dialect, victim);
      await locker.raw(dialect === 'pg' ? 'COMMIT' : 'UNLOCK TABLES').connection(conn);
      await locker.client.releaseConnection(conn);
      const failed = await cycle;
      expect(failed.outcome).toBe('failed');
      expect(failed.error).toBeTruthy();
      const errorLines = p
        .logs()
        .split('\n')
        .filter((l) => l.includes('"level":"error"'));
      expect(errorLines).toHaveLength(1);
      expect(errorLines[0]).toContain('"message":"cycle finished"');
      // What was planned before the kill stays planned: it committed with its watermark.
      expect(await db.db(t.watermarks).where({ kind: 'overtime' }).first()).toBeTruthy();
      expect(await db.db(t.watermarks).where({ kind: 'trip' }).first()).toBeUndefined();

      // The next cycle reconnects and finishes the job.
      const ok = await runCycle(deps);
      expect(ok.outcome).toBe('ok');
      await expectLedgerMatchesSource(db, emu);
    } finally {
      await locker.destroy();
      await source.destroy();
    }
  });

  it('the state database unreachable for a cycle: it fails without a password in the error, and the next cycle sends the change once', async () => {
    const config = sampleConfig(db.url, emu);
    const p = testPipeline(db, config);
    const ids = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(3).pluck('id')).map(Number);
    await touchRows(db.db, 'leave_requests', ids, { reason: '状态库中断期间的修改' });
    const url = dialect === 'pg' ? 'postgres://sync:pw-state-secret-1@127.0.0.1:1/state' : 'mysql://sync:pw-state-secret-1@127.0.0.1:1/state';
    const down = connect(url, { poolMax: 1 });
    try {
      const err = await runCycle({ ...p.deps, state: down }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).not.toBeNull();
      expect(describeError(err)).not.toContain('pw-state-secret-1');
      expect(p.logs()).not.toContain('pw-state-secret-1');
    } finally {
      await down.destroy();
    }
    const created = emu.stats().created;
    const ok = await runCycle(p.deps);
    expect(ok.outcome).toBe('ok');
    expect(ok.plan.created).toBe(3);
    expect(emu.stats().created - created).toBe(3);
    expect(emu.ledger().filter((e) => e.item.reason === '状态库中断期间的修改' && e.status === 2)).toHaveLength(3);
  });

  it('a lock held on the sync table during a claim: the sender waits or fails the cycle cleanly, and nothing is sent twice', async () => {
    const config = sampleConfig(db.url, emu);
    const p = testPipeline(db, config);
    const ids = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').offset(10).limit(5).pluck('id')).map(Number);
    await touchRows(db.db, 'leave_requests', ids, { reason: '认领时被锁住' });
    const locker = connect(db.url, { poolMax: 1 });
    try {
      const trx = await locker.transaction();
      // Every row of the outbox locked by someone else for 1.5 s.
      await trx(t.syncRecords).select('id').forUpdate();
      const release = setTimeout(() => void trx.commit(), 1_500);
      const r = await runCycle(p.deps);
      clearTimeout(release);
      if (!trx.isCompleted()) await trx.commit();
      // SKIP LOCKED: the claim found nothing it could take, or waited; either way no error storm.
      expect(['ok', 'failed']).toContain(r.outcome);
      for (let i = 0; i < 3; i++) if ((await runCycle(p.deps)).outboxDepth === 0) break;
    } finally {
      await locker.destroy();
    }
    expect(emu.ledger().filter((e) => e.item.reason === '认领时被锁住' && e.status === 2)).toHaveLength(5);
    await expectLedgerMatchesSource(db, emu);
  });
});
