import { connect } from '../src/db/connect.js';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { migrateLatest } from '../src/state/migrate.js';
import { stateTables } from '../src/state/tables.js';
import {
  claimDue,
  createsByKeys,
  heldCreates,
  insertOperations,
  markFailed,
  markRetry,
  markSent,
  outboxDepth,
  mayExistInFeishu,
  releaseLeases,
  requeueSentCreates,
  retryOperations,
  retryWithOutcome,
  statusCounts,
  type NewOperation,
  type OutboxOperation,
} from '../src/state/outbox.js';
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
    for (const name of [t.syncRecords, t.statusCounts, t.records, t.watermarks, t.lock, t.runs]) await tdb.db(name).delete();
  });

  it('keeps watermarks as the source database strings, microseconds included', async () => {
    await setWatermark(tdb.db, t, 'leave', { value: '2026-03-01 08:30:00.123456', key: '42' });
    await setWatermark(tdb.db, t, 'leave', { value: '2026-03-01 08:30:00.123457', key: '7' });
    expect(await getWatermark(tdb.db, t, 'leave')).toMatchObject({ cursor: { value: '2026-03-01 08:30:00.123457', key: '7' } });
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

  /** The id of the one operation of (key, version, operation). */
  const idOf = async (sourceKey: string, version: string, operation = 'create'): Promise<number> =>
    Number(((await tdb.db(t.syncRecords).where({ kind: 'leave', source_key: sourceKey, version, operation }).first('id')) as { id: number }).id);
  const statusOf = async (id: number): Promise<string> => String(((await tdb.db(t.syncRecords).where({ id }).first('status')) as { status: string }).status);

  it('a create waits while the revoke of the version before it is failed or dead (held); retried and done, the create goes', async () => {
    await insertOperations(tdb.db, t, [op('1', 'v1'), op('2', 'v1')]);
    const [c1, other] = await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 });
    await markSent(tdb.db, t, c1!.id, { owner: 'a', approvalId: '7000000000000000001' });
    await markSent(tdb.db, t, other!.id, { owner: 'a', approvalId: '7000000000000000002' });
    await insertOperations(tdb.db, t, [op('1', 'v1', 'revoke', { revokesId: c1!.id, idempotencyKey: null }), op('1', 'v2'), op('2', 'v1', 'revoke', { revokesId: other!.id, idempotencyKey: null })]);
    const revokes = await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 });
    expect(revokes.map((r) => [r.sourceKey, r.operation])).toEqual([
      ['1', 'revoke'],
      ['2', 'revoke'],
    ]);
    await markFailed(tdb.db, t, revokes[0]!.id, { owner: 'a', status: 'failed', code: 1220600, msg: 'the attendance result has been sealed and can not modify', errorCode: 'FEISHU_SEALED' });
    await markFailed(tdb.db, t, revokes[1]!.id, { owner: 'a', status: 'dead', code: 1225000, msg: 'internal', errorCode: 'FEISHU_INTERNAL' });
    expect(await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 })).toEqual([]);
    const held = await heldCreates(tdb.db, t);
    expect(held.total).toBe(1);
    expect(held.items.map((h) => [h.create.sourceKey, h.create.version, h.revoke.id, h.revoke.status])).toEqual([['1', 'v2', revokes[0]!.id, 'failed']]);
    // A later revoke of the same key (the held version cancelled too) does not wait for the failed one.
    const c2 = await idOf('1', 'v2');
    await insertOperations(tdb.db, t, [op('1', 'v2', 'revoke', { revokesId: c2, idempotencyKey: null })]);
    await tdb.db(t.syncRecords).where({ id: c2 }).update({ status: 'superseded' });
    expect(await heldCreates(tdb.db, t)).toEqual({ total: 0, items: [] });
    expect((await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 })).map((r) => [r.sourceKey, r.operation, r.version])).toEqual([['1', 'revoke', 'v2']]);
    await tdb.db(t.syncRecords).where({ id: c2 }).update({ status: 'pending' });
    await tdb.db(t.syncRecords).where({ kind: 'leave', source_key: '1', version: 'v2', operation: 'revoke' }).delete();

    expect(await retryWithOutcome(tdb.db, t, { status: 'failed' })).toEqual({ requeued: 1, superseded: 0, revokes: 0, kept: 0 });
    const again = await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 });
    expect(again.map((r) => r.id)).toEqual([revokes[0]!.id]);
    await markSent(tdb.db, t, again[0]!.id, { owner: 'a', approvalId: '7000000000000000001' });
    const next = await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 });
    expect(next.map((r) => [r.sourceKey, r.operation, r.version])).toEqual([['1', 'create', 'v2']]);
  });

  it('retry queues creates only while they are their record\'s current version; stale ones are superseded, or revoked when Feishu may hold them', async () => {
    const rec = (sourceKey: string, version: string | null, state: 'active' | 'inactive' | 'invalid') => ({ kind: 'leave' as const, sourceKey, version, state, userId: 'u', effectiveDate: '2026-03-01', reasons: null, generation: 0 });
    await upsertRecords(tdb.db, t, [rec('A', 'v2', 'active'), rec('B', 'v2', 'active'), rec('C', 'v1', 'active'), rec('D', null, 'inactive'), rec('E', 'v1', 'invalid'), rec('F', 'v1', 'active')]);
    await insertOperations(tdb.db, t, ['A', 'B', 'C', 'D', 'E'].map((k) => op(k, 'v1')));
    await insertOperations(tdb.db, t, [op('F', 'v1'), op('F', 'v1', 'create', { generation: 1 })]);
    const refused = { status: 'failed', attempts: 1, error_code: 'FEISHU_USER_NOT_FOUND', feishu_code: 1220004 };
    const died = { status: 'dead', attempts: 3, error_code: 'FEISHU_AMBIGUOUS', feishu_code: null };
    const set = async (k: string, cols: Record<string, unknown>, generation = 0) => tdb.db(t.syncRecords).where({ kind: 'leave', source_key: k, generation }).update(cols);
    await set('A', refused); // stale, never stored → superseded
    await set('B', died); // stale, may be stored → revoked
    await set('C', refused); // current → queued
    await set('D', died); // cancelled since → revoked
    await set('E', refused); // the row is invalid now → left
    await set('F', died); // generation 0 was replaced by generation 1 → revoked
    await set('F', { status: 'sent', approval_id: '7000000000000000009', sent_at: Date.now() }, 1);
    expect(await retryWithOutcome(tdb.db, t, { status: 'failed' })).toEqual({ requeued: 1, superseded: 1, revokes: 0, kept: 1 });
    expect(await retryWithOutcome(tdb.db, t, { status: 'dead' })).toEqual({ requeued: 0, superseded: 0, revokes: 3, kept: 0 });
    // Twice is the same: the revokes are planned once, the dead creates stay until revoked.
    expect(await retryWithOutcome(tdb.db, t, { status: 'dead' })).toEqual({ requeued: 0, superseded: 0, revokes: 0, kept: 0 });
    expect(await statusOf(await idOf('A', 'v1'))).toBe('superseded');
    expect(await statusOf(await idOf('C', 'v1'))).toBe('pending');
    expect(await statusOf(await idOf('E', 'v1'))).toBe('failed');
    const revokes = (await tdb.db(t.syncRecords).where({ operation: 'revoke' }).orderBy('source_key')) as Array<{ source_key: string; revokes_id: number | string }>;
    expect(revokes.map((r) => r.source_key)).toEqual(['B', 'D', 'F']);
    const fGen0 = Number(((await tdb.db(t.syncRecords).where({ kind: 'leave', source_key: 'F', generation: 0 }).first('id')) as { id: number }).id);
    expect(Number(revokes[2]!.revokes_id)).toBe(fGen0);
  });

  it('resend queues sent creates again with their approval_id, except those a revoke undoes', async () => {
    await insertOperations(tdb.db, t, [op('1', 'v1', 'create', { effectiveDate: '2026-03-02' }), op('2', 'v1', 'create', { effectiveDate: '2026-03-03' }), op('3', 'v1', 'create', { effectiveDate: '2026-05-01' })]);
    const claimed = await claimDue(tdb.db, t, { owner: 'a', limit: 10, leaseMs: 60_000 });
    for (const [i, c] of claimed.entries()) await markSent(tdb.db, t, c.id, { owner: 'a', approvalId: `700000000000000000${i}` });
    await insertOperations(tdb.db, t, [op('2', 'v1', 'revoke', { revokesId: claimed[1]!.id, idempotencyKey: null })]);
    expect(await requeueSentCreates(tdb.db, t, { kind: 'leave', from: '2026-03-01', to: '2026-03-31' })).toBe(1);
    const [one] = (await createsByKeys(tdb.db, t, 'leave', ['1'])).get('1')!;
    expect(one).toMatchObject({ status: 'pending', attempts: 0, approvalId: '7000000000000000000' });
    expect(mayExistInFeishu(one!)).toBe(true);
    expect(await statusOf(claimed[1]!.id)).toBe('sent');
    expect(await statusOf(claimed[2]!.id)).toBe('sent');
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

describe('mayExistInFeishu', () => {
  const base: OutboxOperation = {
    id: 1, kind: 'leave', sourceKey: '1', version: 'v1', generation: 0, operation: 'create', idempotencyKey: 'k', status: 'pending', attempts: 0, nextAttemptAt: 0,
    leaseOwner: null, leaseUntil: null, revokesId: null, approvalId: null, feishuCode: null, feishuMsg: null, errorCode: null, reasons: null, payload: null,
    userId: 'u', effectiveDate: '2026-03-01', createdAt: 0, updatedAt: 0, sentAt: null,
  };
  it.each([
    ['never attempted', {}, false],
    ['rate limited only (no attempt counted)', { errorCode: 'FEISHU_RATE_LIMITED' }, false],
    ['retrying after a timeout', { attempts: 1, errorCode: 'FEISHU_TIMEOUT' }, true],
    ['refused on its only attempt', { status: 'failed', attempts: 1, errorCode: 'FEISHU_USER_NOT_FOUND' }, false],
    ['refused after earlier attempts', { status: 'failed', attempts: 3, errorCode: 'FEISHU_SEALED' }, true],
    ['failed as a duplicate key', { status: 'failed', attempts: 1, errorCode: 'FEISHU_DUPLICATE' }, true],
    ['dead', { status: 'dead', attempts: 10, errorCode: 'FEISHU_SERVER_ERROR' }, true],
    ['dead, then queued again by retry', { attempts: 0, errorCode: 'FEISHU_AMBIGUOUS' }, true],
    ['interrupted by a shutdown, queued again', { attempts: 0, errorCode: 'ABORTED' }, true],
    ['sent, then queued again by resend', { attempts: 0, approvalId: '7000000000000000001', sentAt: 1 }, true],
    ['sending', { status: 'sending' }, true],
    ['a revoke', { operation: 'revoke', status: 'dead' }, false],
  ] as Array<[string, Partial<OutboxOperation>, boolean]>)('%s', (_name, patch, expected) => {
    expect(mayExistInFeishu({ ...base, ...patch })).toBe(expected);
  });
});
