import { connect } from '../src/db/connect.js';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { migrateLatest } from '../src/state/migrate.js';
import { stateTables } from '../src/state/tables.js';
import {
  claimDue,
  createsByKeys,
  insertOperations,
  markFailed,
  markRetry,
  markSent,
  outboxDepth,
  releaseLeases,
  retryOperations,
  statusCounts,
  type NewOperation,
} from '../src/state/syncRecords.js';
import { getWatermark, setWatermark } from '../src/state/watermarks.js';
import { getRecords, upsertRecords, activeKeysInDateRange } from '../src/state/records.js';
import { createLeaderLock, lockHolder } from '../src/state/lock.js';
import { finishRun, lastRuns, startRun } from '../src/state/runs.js';

const t = stateTables('attendance_sync_');

function op(sourceKey: string, version: string, operation: 'create' | 'revoke' = 'create', extra: Partial<NewOperation> = {}): NewOperation {
  return { kind: 'leave', sourceKey, version, generation: 0, operation, idempotencyKey: `k-${sourceKey}-${version}`, ...extra };
}

describe.each(dialectsUnderTest())('state tables on %s', (dialect) => {
  let tdb: TestDatabase;
  beforeAll(async () => {
    tdb = await createTestDatabase(dialect, `state_${dialect}`);
    await migrateLatest(tdb.db, t.prefix);
  });
  afterAll(async () => tdb?.drop());
  beforeEach(async () => {
    for (const name of [t.syncRecords, t.records, t.watermarks, t.lock, t.runs]) await tdb.db(name).delete();
  });

  it('keeps watermarks as the source database strings, microseconds included', async () => {
    await setWatermark(tdb.db, t, 'leave', { cursorValue: '2026-03-01 08:30:00.123456', cursorKey: '42' });
    await setWatermark(tdb.db, t, 'leave', { cursorValue: '2026-03-01 08:30:00.123457', cursorKey: '7' });
    expect(await getWatermark(tdb.db, t, 'leave')).toMatchObject({ cursorValue: '2026-03-01 08:30:00.123457', cursorKey: '7' });
    expect(await getWatermark(tdb.db, t, 'trip')).toBeNull();
  });

  it('upserts record states and finds active keys by date', async () => {
    await upsertRecords(tdb.db, t, [
      { kind: 'leave', sourceKey: '1', version: 'v1', state: 'active', userId: 'u1', effectiveDate: '2026-03-01', reasons: null, generation: 0 },
      { kind: 'leave', sourceKey: '2', version: null, state: 'inactive', userId: 'u2', effectiveDate: '2026-03-02', reasons: null, generation: 0 },
    ]);
    await upsertRecords(tdb.db, t, [
      { kind: 'leave', sourceKey: '1', version: 'v2', state: 'active', userId: 'u1', effectiveDate: '2026-03-05', reasons: null, generation: 0 },
    ]);
    const recs = await getRecords(tdb.db, t, 'leave', ['1', '2', '3']);
    expect(recs.get('1')).toMatchObject({ version: 'v2', effectiveDate: '2026-03-05' });
    expect(recs.get('2')?.state).toBe('inactive');
    expect(recs.has('3')).toBe(false);
    expect(await activeKeysInDateRange(tdb.db, t, 'leave', '2026-03-01', '2026-03-31')).toEqual(['1']);
  });

  it('inserting the same planned operation twice stores it once', async () => {
    await insertOperations(tdb.db, t, [op('1', 'v1'), op('2', 'v1')]);
    await insertOperations(tdb.db, t, [op('1', 'v1'), op('2', 'v1'), op('2', 'v1', 'create', { generation: 1 })]);
    expect(await outboxDepth(tdb.db, t)).toBe(3);
  });

  it('claims in order per source key: a later operation waits for the earlier one', async () => {
    await insertOperations(tdb.db, t, [op('1', 'v1'), op('1', 'v1', 'revoke'), op('1', 'v2'), op('2', 'v1')]);
    const first = await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 });
    expect(first.map((r) => [r.sourceKey, r.operation, r.version])).toEqual([
      ['1', 'create', 'v1'],
      ['2', 'create', 'v1'],
    ]);
    expect(await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 })).toEqual([]);
    expect(await markSent(tdb.db, t, first[0]!.id, { owner: 'someone-else', approvalId: 'x' })).toBe(false);
    expect(await markSent(tdb.db, t, first[0]!.id, { owner: 'a', approvalId: '7000000000000000001' })).toBe(true);
    const second = await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 });
    expect(second.map((r) => [r.sourceKey, r.operation])).toEqual([['1', 'revoke']]);
  });

  it('honours next_attempt_at, reclaims expired leases, and releases leases on shutdown', async () => {
    await insertOperations(tdb.db, t, [op('1', 'v1'), op('2', 'v1')]);
    const now = Date.now();
    const [a, b] = await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 1_000, now });
    await markRetry(tdb.db, t, a!.id, { owner: 'a', nextAttemptAt: now + 60_000, code: 1225000, msg: 'internal', errorCode: 'FEISHU_INTERNAL', countAttempt: true, now });
    expect(await claimDue(tdb.db, t, { owner: 'b', limit: 10, leaseMs: 1_000, now: now + 500 })).toEqual([]);
    const reclaimed = await claimDue(tdb.db, t, { owner: 'b', limit: 10, leaseMs: 1_000, now: now + 2_000 });
    expect(reclaimed.map((r) => r.id)).toEqual([b!.id]);
    expect(await releaseLeases(tdb.db, t, 'b')).toBe(1);
    const later = await claimDue(tdb.db, t, { owner: 'c', limit: 10, leaseMs: 1_000, now: now + 61_000 });
    expect(later.map((r) => r.id).sort()).toEqual([a!.id, b!.id].sort());
    expect(later.find((r) => r.id === a!.id)?.attempts).toBe(1);
  });

  it('retry requeues failed or dead operations by kind and key; counts per kind and status', async () => {
    await insertOperations(tdb.db, t, [op('1', 'v1'), op('2', 'v1'), op('3', 'v1')]);
    const claimed = await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 });
    await markFailed(tdb.db, t, claimed[0]!.id, { owner: 'a', status: 'failed', code: 1220004, msg: 'user not found', errorCode: 'FEISHU_USER_NOT_FOUND' });
    await markFailed(tdb.db, t, claimed[1]!.id, { owner: 'a', status: 'dead', code: 1225000, msg: 'internal', errorCode: 'FEISHU_INTERNAL' });
    await markSent(tdb.db, t, claimed[2]!.id, { owner: 'a', approvalId: '1' });
    expect(await statusCounts(tdb.db, t)).toEqual([
      { kind: 'leave', status: 'dead', count: 1 },
      { kind: 'leave', status: 'failed', count: 1 },
      { kind: 'leave', status: 'sent', count: 1 },
    ]);
    expect(await retryOperations(tdb.db, t, { status: 'failed', sourceKey: '2' })).toBe(0);
    expect(await retryOperations(tdb.db, t, { status: 'failed', kind: 'leave' })).toBe(1);
    expect(await retryOperations(tdb.db, t, { status: 'dead' })).toBe(1);
    expect(await outboxDepth(tdb.db, t)).toBe(2);
    const creates = await createsByKeys(tdb.db, t, 'leave', ['1', '2']);
    expect(creates.get('1')?.[0]?.attempts).toBe(0);
  });

  if (dialect !== 'sqlite') {
    it('concurrent claimers on separate connections never take the same operation', async () => {
      const ops = Array.from({ length: 300 }, (_, i) => op(String(i), 'v1'));
      await insertOperations(tdb.db, t, ops);
      const workers = [connect(tdb.url), connect(tdb.url), connect(tdb.url)];
      try {
        const seen: number[] = [];
        await Promise.all(
          workers.map(async (db, w) => {
            for (;;) {
              const got = await claimDue(db, t, { owner: `w${w}`, limit: 7, leaseMs: 60_000 });
              if (got.length === 0) return;
              seen.push(...got.map((r) => r.id));
            }
          }),
        );
        expect(seen).toHaveLength(300);
        expect(new Set(seen).size).toBe(300);
      } finally {
        await Promise.all(workers.map((w) => w.destroy()));
      }
    });
  }

  it('one leader at a time; a crashed leader frees the lock', async () => {
    const other = connect(tdb.url);
    try {
      const a = createLeaderLock(tdb.db, t, { owner: 'a', leaseMs: dialect === 'sqlite' ? 300 : 30_000 });
      const b = createLeaderLock(other, t, { owner: 'b', leaseMs: 30_000 });
      expect(await a.tryAcquire()).toBe(true);
      expect(await b.tryAcquire()).toBe(false);
      expect(await a.renew()).toBe(true);
      expect((await lockHolder(other, t))?.owner).toBe('a');
      await a.release();
      expect(await b.tryAcquire()).toBe(true);
      expect(await b.renew()).toBe(true);
      const c = createLeaderLock(tdb.db, t, { owner: 'c', leaseMs: 30_000 });
      if (dialect === 'sqlite') {
        expect(await c.tryAcquire()).toBe(false); // b's lease is still running
      } else {
        // b's process "dies": the server ends its session, which frees the session lock.
        if (dialect === 'pg') {
          await tdb.db.raw(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
        } else {
          const [[row]] = await tdb.db.raw("SELECT IS_USED_LOCK(SHA1(CONCAT(DATABASE(), '/', ?))) AS id", [`${t.prefix}worker`]);
          await tdb.db.raw(`KILL ${Number(row.id)}`);
        }
        await new Promise((r) => setTimeout(r, 200));
        expect(await c.tryAcquire()).toBe(true);
        expect(await b.renew()).toBe(false); // b learns it lost leadership
        await c.release();
      }
    } finally {
      await other.destroy();
    }
  });

  it('workers of two state databases on one server do not share the lock', async () => {
    const second = await createTestDatabase(dialect, `state_lock_${dialect}`);
    try {
      await migrateLatest(second.db, t.prefix);
      const a = createLeaderLock(tdb.db, t, { owner: 'first-db', leaseMs: 30_000 });
      const b = createLeaderLock(second.db, t, { owner: 'second-db', leaseMs: 30_000 });
      expect(await a.tryAcquire()).toBe(true);
      expect(await b.tryAcquire()).toBe(true);
      await a.release();
      await b.release();
    } finally {
      await second.drop();
    }
  });

  it(dialect === 'sqlite' ? 'sqlite-style leases expire' : 'a session lock outlives its lease while the session lives', async () => {
    const other = connect(tdb.url);
    try {
      const a = createLeaderLock(tdb.db, t, { owner: 'a', leaseMs: 200 });
      const b = createLeaderLock(other, t, { owner: 'b', leaseMs: 200 });
      expect(await a.tryAcquire()).toBe(true);
      expect(await b.tryAcquire()).toBe(false);
      await new Promise((r) => setTimeout(r, 300));
      expect((await lockHolder(other, t))?.leaseUntil).toBeLessThan(Date.now());
      if (dialect === 'sqlite') {
        // No server to notice a dead holder: the lease running out is what frees the lock.
        expect(await b.tryAcquire()).toBe(true);
        expect(await a.renew()).toBe(false);
        await b.release();
      } else {
        // The server frees the lock when the holder's session ends, never on the clock: a
        // slow but live leader keeps it, and renewing confirms it.
        expect(await b.tryAcquire()).toBe(false);
        expect(await a.renew()).toBe(true);
        await a.release();
        expect(await b.tryAcquire()).toBe(true);
        await b.release();
      }
    } finally {
      await other.destroy();
    }
  });

  it('records runs', async () => {
    const id = await startRun(tdb.db, t, { type: 'cycle', host: 'h', pid: 1 });
    await finishRun(tdb.db, t, id, { outcome: 'ok', counts: { created: 3 } });
    const [run] = await lastRuns(tdb.db, t, 1);
    expect(run).toMatchObject({ id, type: 'cycle', outcome: 'ok', counts: { created: 3 } });
  });
});
