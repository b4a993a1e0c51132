import type { Knex } from 'knex';
import type { Kind } from '../kinds.js';
import { AppError } from '../errors.js';
import { dialectFor } from '../db/dialect.js';
import type { StateTables } from './tables.js';
import { chunks } from './records.js';
import { fromJson, toInt, toMillis } from './values.js';

/*
 * The sync table: the outbox of operations to send and the history of what was sent.
 * This module is its only writer.
 */

export const OP_STATUS = Object.freeze({
  PENDING: 'pending',
  SENDING: 'sending',
  SENT: 'sent',
  FAILED: 'failed',
  DEAD: 'dead',
  INVALID: 'invalid',
  REVOKED: 'revoked',
  SUPERSEDED: 'superseded',
} as const);
export type OpStatus = (typeof OP_STATUS)[keyof typeof OP_STATUS];

export const OPERATIONS = Object.freeze({ CREATE: 'create', REVOKE: 'revoke' } as const);
export type Operation = (typeof OPERATIONS)[keyof typeof OPERATIONS];

/** Statuses of an operation that is still to run: later operations on the same key wait for it. */
const IN_FLIGHT: readonly OpStatus[] = [OP_STATUS.PENDING, OP_STATUS.SENDING];

export interface SyncRecord {
  readonly id: number;
  readonly kind: Kind;
  readonly sourceKey: string;
  readonly version: string;
  readonly generation: number;
  readonly operation: Operation;
  readonly idempotencyKey: string | null;
  readonly status: OpStatus;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly leaseOwner: string | null;
  readonly leaseUntil: number | null;
  readonly revokesId: number | null;
  readonly approvalId: string | null;
  readonly feishuCode: number | null;
  readonly feishuMsg: string | null;
  readonly errorCode: string | null;
  readonly reasons: string[] | null;
  readonly payload: unknown;
  readonly userId: string | null;
  readonly effectiveDate: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly sentAt: number | null;
}

export interface NewOperation {
  readonly kind: Kind;
  readonly sourceKey: string;
  readonly version: string;
  readonly generation: number;
  readonly operation: Operation;
  readonly idempotencyKey?: string | null;
  readonly status?: OpStatus;
  readonly revokesId?: number | null;
  readonly reasons?: string[] | null;
  readonly payload?: unknown;
  readonly userId?: string | null;
  readonly effectiveDate?: string | null;
}

type Row = Record<string, unknown>;

function fromRow(r: Row): SyncRecord {
  return {
    id: Number(r.id),
    kind: r.kind as Kind,
    sourceKey: String(r.source_key),
    version: String(r.version),
    generation: toInt(r.generation as number),
    operation: r.operation as Operation,
    idempotencyKey: (r.idempotency_key as string | null) ?? null,
    status: r.status as OpStatus,
    attempts: toInt(r.attempts as number),
    nextAttemptAt: toMillis(r.next_attempt_at as number) ?? 0,
    leaseOwner: (r.lease_owner as string | null) ?? null,
    leaseUntil: toMillis(r.lease_until as number | null),
    revokesId: toMillis(r.revokes_id as number | null),
    approvalId: (r.approval_id as string | null) ?? null,
    feishuCode: r.feishu_code === null || r.feishu_code === undefined ? null : Number(r.feishu_code),
    feishuMsg: (r.feishu_msg as string | null) ?? null,
    errorCode: (r.error_code as string | null) ?? null,
    reasons: fromJson<string[]>(r.reasons as string | null),
    payload: fromJson<unknown>(r.payload as string | null),
    userId: (r.user_id as string | null) ?? null,
    effectiveDate: (r.effective_date as string | null) ?? null,
    createdAt: toMillis(r.created_at as number) ?? 0,
    updatedAt: toMillis(r.updated_at as number) ?? 0,
    sentAt: toMillis(r.sent_at as number | null),
  };
}

/**
 * Add planned operations. Re-planning the same version (a lookback re-read, a crash before
 * the watermark moved) hits the unique key and is ignored: planning is idempotent.
 */
export async function insertOperations(trx: Knex, t: StateTables, ops: readonly NewOperation[], now = Date.now()): Promise<void> {
  for (const part of chunks(ops, 200)) {
    await trx(t.syncRecords)
      .insert(
        part.map((o) => ({
          kind: o.kind,
          source_key: o.sourceKey,
          version: o.version,
          generation: o.generation,
          operation: o.operation,
          idempotency_key: o.idempotencyKey ?? null,
          status: o.status ?? OP_STATUS.PENDING,
          attempts: 0,
          next_attempt_at: now,
          revokes_id: o.revokesId ?? null,
          reasons: o.reasons ? JSON.stringify(o.reasons) : null,
          payload: o.payload === undefined ? null : JSON.stringify(o.payload),
          user_id: o.userId ?? null,
          effective_date: o.effectiveDate ?? null,
          created_at: now,
          updated_at: now,
        })),
      )
      .onConflict(['kind', 'source_key', 'version', 'operation', 'generation'])
      .ignore();
  }
}

function isLockConflict(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  // PostgreSQL: deadlock_detected, lock_not_available, serialization_failure;
  // MySQL / MariaDB: ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT; SQLite: SQLITE_BUSY.
  return ['40P01', '55P03', '40001', 'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT'].includes(String(code));
}

/**
 * Claim up to `limit` due operations for `owner`, leasing them until now + leaseMs.
 *
 * Due: pending with next_attempt_at ≤ now, or sending with an expired lease (its sender
 * crashed; the retry is safe because creates carry their idempotent_id).
 * Head of key: an operation waits while an earlier operation on the same source key is
 * pending or sending, so a revoke always runs before the create of the next version and
 * after the create it undoes.
 * PostgreSQL and MySQL / MariaDB claim with FOR UPDATE SKIP LOCKED, so concurrent claimers
 * never take the same row and never wait on each other; SQLite has a single writer.
 */
export async function claimDue(
  db: Knex,
  t: StateTables,
  opts: { owner: string; limit: number; now?: number; leaseMs: number; kinds?: readonly Kind[]; exclude?: readonly number[] },
): Promise<SyncRecord[]> {
  const now = opts.now ?? Date.now();
  const dialect = dialectFor(db);
  try {
    return await db.transaction(async (trx) => {
      // Two ordered scans instead of one OR: leases that ran out (rare), then due operations,
      // each an index range (status, id) that stops at the limit. One OR'ed query made the
      // planner read and sort every due row on each claim: seconds with a million queued.
      const scan = (status: OpStatus, due: (q: Knex.QueryBuilder) => Knex.QueryBuilder, limit: number) => {
        let q = due(trx(`${t.syncRecords} as s`).select('s.id').where('s.status', status))
          .whereNotExists((sub) =>
            sub
              .select(trx.raw('1'))
              .from(`${t.syncRecords} as e`)
              .whereRaw('e.kind = s.kind')
              .andWhereRaw('e.source_key = s.source_key')
              .andWhereRaw('e.id < s.id')
              .whereIn('e.status', IN_FLIGHT as string[]),
          )
          .orderBy('s.id')
          .limit(limit);
        if (opts.kinds && opts.kinds.length > 0) q = q.whereIn('s.kind', opts.kinds as string[]);
        if (dialect.skipLocked) q = q.forUpdate().skipLocked();
        return q as Promise<Array<{ id: number | string }>>;
      };
      // A plain read first: a locking scan of the 'sending' range would take gap locks that
      // other claimers' status updates run into (MySQL), and expired leases are rare.
      const anyExpired = await trx(t.syncRecords).where('status', OP_STATUS.SENDING).andWhere('lease_until', '<', now).first('id');
      // The claimer's own operations still in flight are never taken back, whatever their
      // lease says: that would send them a second time while the first call is still going.
      const exclude = opts.exclude ?? [];
      const expired = anyExpired
        ? await scan(OP_STATUS.SENDING, (q) => (exclude.length > 0 ? q.whereNotIn('s.id', exclude as number[]) : q).andWhere('s.lease_until', '<', now), opts.limit)
        : [];
      const due = expired.length < opts.limit ? await scan(OP_STATUS.PENDING, (q) => q.andWhere('s.next_attempt_at', '<=', now), opts.limit - expired.length) : [];
      const found = [...expired, ...due];
      const ids = found.map((r) => Number(r.id)).sort((a, b) => a - b);
      if (ids.length === 0) return [];
      await trx(t.syncRecords)
        .whereIn('id', ids)
        .update({ status: OP_STATUS.SENDING, lease_owner: opts.owner, lease_until: now + opts.leaseMs, updated_at: now });
      const rows = (await trx(t.syncRecords).whereIn('id', ids).orderBy('id')) as Row[];
      return rows.map(fromRow);
      // READ COMMITTED on MySQL / MariaDB: locking reads then lock the rows they return, not
      // the gaps between them, so concurrent claimers skip each other instead of deadlocking.
    }, dialect.name === 'mysql' ? { isolationLevel: 'read committed' } : undefined);
  } catch (err) {
    if (isLockConflict(err)) {
      throw new AppError('STATE_CLAIM_CONFLICT', 'claiming operations hit a lock conflict in the state database; the next attempt retries', {
        retryable: true,
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * Extend the leases `owner` holds on these operations (claimed and not yet recorded): a call
 * that outlasts the lease (rate-limit waits, retries inside the client) keeps its claim.
 * Returns how many leases were extended.
 */
export async function renewLeases(db: Knex, t: StateTables, owner: string, ids: readonly number[], o: { leaseMs: number; now?: number }): Promise<number> {
  const now = o.now ?? Date.now();
  let n = 0;
  for (const part of chunks(ids)) {
    n += await db(t.syncRecords)
      .whereIn('id', part)
      .andWhere({ status: OP_STATUS.SENDING, lease_owner: owner })
      .update({ lease_until: now + o.leaseMs });
  }
  return n;
}

function leased(db: Knex, t: StateTables, id: number, owner: string): Knex.QueryBuilder {
  return db(t.syncRecords).where({ id, status: OP_STATUS.SENDING, lease_owner: owner });
}

/** Record success; applies only while `owner` still holds the lease. Returns whether it applied. */
export async function markSent(db: Knex, t: StateTables, id: number, o: { owner: string; approvalId: string | null; now?: number }): Promise<boolean> {
  return (await markSentMany(db, t, [{ id, approvalId: o.approvalId }], o)) > 0;
}

/**
 * Record many successes in one statement (the sender batches them). Like `markSent`, a row
 * changes only while `owner` still holds its lease. Returns how many rows changed.
 */
export async function markSentMany(
  db: Knex,
  t: StateTables,
  items: ReadonlyArray<{ id: number; approvalId: string | null }>,
  o: { owner: string; now?: number },
): Promise<number> {
  if (items.length === 0) return 0;
  const now = o.now ?? Date.now();
  const withId = items.filter((i) => i.approvalId !== null);
  const approvalId =
    withId.length === 0
      ? null
      : db.raw(`CASE id ${withId.map(() => 'WHEN ? THEN ?').join(' ')} ELSE approval_id END`, withId.flatMap((i) => [i.id, i.approvalId!]));
  return db(t.syncRecords)
    .whereIn(
      'id',
      items.map((i) => i.id),
    )
    .andWhere({ status: OP_STATUS.SENDING, lease_owner: o.owner })
    .update({
      status: OP_STATUS.SENT,
      ...(approvalId ? { approval_id: approvalId } : {}),
      feishu_code: 0,
      feishu_msg: null,
      error_code: null,
      attempts: db.raw('attempts + 1'),
      lease_owner: null,
      lease_until: null,
      sent_at: now,
      updated_at: now,
    });
}

/** Back to pending, due again at `nextAttemptAt`. */
export async function markRetry(
  db: Knex,
  t: StateTables,
  id: number,
  o: { owner: string; nextAttemptAt: number; code: number | null; msg: string | null; errorCode: string | null; countAttempt: boolean; now?: number },
): Promise<boolean> {
  const n = await leased(db, t, id, o.owner).update(backToPending(db, o));
  return n > 0;
}

/** The columns that hand a leased operation back: pending, due at `nextAttemptAt`, the outcome noted. */
function backToPending(
  db: Knex,
  o: { nextAttemptAt: number; code: number | null; msg: string | null; errorCode: string | null; countAttempt: boolean; now?: number },
): Record<string, unknown> {
  return {
    status: OP_STATUS.PENDING,
    next_attempt_at: o.nextAttemptAt,
    feishu_code: o.code,
    feishu_msg: o.msg,
    error_code: o.errorCode,
    attempts: o.countAttempt ? db.raw('attempts + 1') : db.raw('attempts'),
    lease_owner: null,
    lease_until: null,
    updated_at: o.now ?? Date.now(),
  };
}

/**
 * Move a create to another generation: a new idempotency key (and the payload that carries
 * it), back to pending and due now, the attempt counted. False when the lease is gone or that
 * generation is already planned.
 */
export async function regenerateCreate(
  db: Knex,
  t: StateTables,
  id: number,
  o: { owner: string; generation: number; idempotencyKey: string; payload: unknown; code: number | null; msg: string | null; errorCode: string | null; now?: number },
): Promise<boolean> {
  const now = o.now ?? Date.now();
  try {
    const n = await leased(db, t, id, o.owner).update({
      ...backToPending(db, { ...o, nextAttemptAt: now, countAttempt: true, now }),
      generation: o.generation,
      idempotency_key: o.idempotencyKey,
      payload: JSON.stringify(o.payload),
    });
    return n > 0;
  } catch {
    return false; // the unique key: that generation exists already
  }
}

/** A final outcome for now: failed (needs an operator's `retry`) or dead (attempts used up). */
export async function markFailed(
  db: Knex,
  t: StateTables,
  id: number,
  o: { owner: string; status: 'failed' | 'dead'; code: number | null; msg: string | null; errorCode: string | null; now?: number },
): Promise<boolean> {
  const n = await leased(db, t, id, o.owner).update({
    status: o.status,
    feishu_code: o.code,
    feishu_msg: o.msg,
    error_code: o.errorCode,
    attempts: db.raw('attempts + 1'),
    lease_owner: null,
    lease_until: null,
    updated_at: o.now ?? Date.now(),
  });
  return n > 0;
}

/** Creates that never left (pending, no attempt yet) and are replaced by a newer version. */
export async function markSuperseded(trx: Knex, t: StateTables, ids: readonly number[], now = Date.now()): Promise<void> {
  for (const part of chunks(ids)) {
    await trx(t.syncRecords).whereIn('id', part).where('status', OP_STATUS.PENDING).update({ status: OP_STATUS.SUPERSEDED, updated_at: now });
  }
}

/** The create a revoke undid is now revoked in Feishu. */
export async function markRevoked(db: Knex, t: StateTables, createId: number, now = Date.now()): Promise<void> {
  await db(t.syncRecords).where({ id: createId }).update({ status: OP_STATUS.REVOKED, updated_at: now });
}

/**
 * Hand leased operations back, attempts unchanged: all of this owner's, or only `ids` (the
 * sender's claimed-but-never-started ones; what it did start keeps its lease until recorded).
 */
export async function releaseLeases(db: Knex, t: StateTables, owner: string, o: { ids?: readonly number[]; now?: number } = {}): Promise<number> {
  const now = o.now ?? Date.now();
  if (o.ids && o.ids.length === 0) return 0;
  let q = db(t.syncRecords).where({ status: OP_STATUS.SENDING, lease_owner: owner });
  if (o.ids) q = q.whereIn('id', o.ids as number[]);
  return q.update({ status: OP_STATUS.PENDING, lease_owner: null, lease_until: null, next_attempt_at: now, updated_at: now });
}

export async function findById(db: Knex, t: StateTables, id: number): Promise<SyncRecord | null> {
  const row = (await db(t.syncRecords).where({ id }).first()) as Row | undefined;
  return row ? fromRow(row) : null;
}

/** Every create row of these keys, oldest first (planning picks generations and what to undo). */
export async function createsByKeys(db: Knex, t: StateTables, kind: Kind, keys: readonly string[]): Promise<Map<string, SyncRecord[]>> {
  const out = new Map<string, SyncRecord[]>();
  for (const part of chunks([...new Set(keys)])) {
    const rows = (await db(t.syncRecords)
      .where({ kind, operation: OPERATIONS.CREATE })
      .whereIn('source_key', part)
      .orderBy('id')) as Row[];
    for (const r of rows) {
      const rec = fromRow(r);
      const list = out.get(rec.sourceKey) ?? [];
      list.push(rec);
      out.set(rec.sourceKey, list);
    }
  }
  return out;
}

/** Queue failed or dead operations again (attempts start over). Returns how many. */
export async function retryOperations(
  db: Knex,
  t: StateTables,
  o: { status: 'failed' | 'dead'; kind?: Kind; sourceKey?: string; now?: number },
): Promise<number> {
  const now = o.now ?? Date.now();
  let q = db(t.syncRecords).where({ status: o.status });
  if (o.kind) q = q.andWhere({ kind: o.kind });
  if (o.sourceKey) q = q.andWhere({ source_key: o.sourceKey });
  return q.update({ status: OP_STATUS.PENDING, attempts: 0, next_attempt_at: now, updated_at: now });
}

export async function statusCounts(db: Knex, t: StateTables): Promise<Array<{ kind: Kind; status: OpStatus; count: number }>> {
  const rows = (await db(t.syncRecords).select('kind', 'status').count({ n: '*' }).groupBy('kind', 'status').orderBy(['kind', 'status'])) as Array<{
    kind: Kind;
    status: OpStatus;
    n: number | string;
  }>;
  return rows.map((r) => ({ kind: r.kind, status: r.status, count: Number(r.n) }));
}

export async function oldestPending(db: Knex, t: StateTables): Promise<SyncRecord | null> {
  const row = (await db(t.syncRecords).whereIn('status', IN_FLIGHT as string[]).orderBy('created_at').orderBy('id').first()) as Row | undefined;
  return row ? fromRow(row) : null;
}

/** The most recent operations that carry an error (failed, dead, or pending a retry). */
export async function latestErrors(db: Knex, t: StateTables, limit = 10): Promise<SyncRecord[]> {
  const rows = (await db(t.syncRecords)
    .where((w) => w.whereIn('status', [OP_STATUS.FAILED, OP_STATUS.DEAD, OP_STATUS.INVALID]).orWhere((p) => p.where('status', OP_STATUS.PENDING).whereNotNull('error_code')))
    .orderBy('updated_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)) as Row[];
  return rows.map(fromRow);
}

export async function outboxDepth(db: Knex, t: StateTables): Promise<number> {
  const row = (await db(t.syncRecords).whereIn('status', IN_FLIGHT as string[]).count({ n: '*' }).first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}

/**
 * Backfill --resend: queue the sent creates of a date range again. They keep their
 * idempotent_id, so Feishu stores nothing twice; the client reconciles the duplicate answer
 * by looking the record up.
 */
export async function requeueSentCreates(db: Knex, t: StateTables, o: { kind: Kind; from: string; to: string; now?: number }): Promise<number> {
  const now = o.now ?? Date.now();
  return db(t.syncRecords)
    .where({ kind: o.kind, operation: OPERATIONS.CREATE, status: OP_STATUS.SENT })
    .whereBetween('effective_date', [o.from, o.to])
    .update({ status: OP_STATUS.PENDING, attempts: 0, next_attempt_at: now, updated_at: now });
}

/**
 * Called right after the leader lock is taken: no other sender can be alive now, so claims
 * left 'sending' by a crashed leader are handed back at once instead of after their lease.
 * Each counts as an attempt: the dead worker may have sent it, and Feishu may hold it, so a
 * create that is then replaced must be revoked, not quietly superseded.
 */
export async function reclaimOrphanedLeases(db: Knex, t: StateTables, now = Date.now()): Promise<number> {
  return db(t.syncRecords)
    .where({ status: OP_STATUS.SENDING })
    .update({ status: OP_STATUS.PENDING, attempts: db.raw('attempts + 1'), lease_owner: null, lease_until: null, next_attempt_at: now, updated_at: now });
}
