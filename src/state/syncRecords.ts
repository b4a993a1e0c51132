import type { Knex } from 'knex';
import type { Kind } from '../kinds.js';
import { AppError } from '../errors.js';
import { dialectFor } from '../db/dialect.js';
import { CODE_CATEGORY, type FeishuCategory } from '../feishu/errors.js';
import type { StateTables } from './tables.js';
import { chunks, getRecords } from './records.js';
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
/** Statuses of an operation that gave up until an operator acts (`retry`). */
const STOPPED: readonly OpStatus[] = [OP_STATUS.FAILED, OP_STATUS.DEAD];

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

/** A sync table row as read by knex, typed. */
export function fromRow(r: Row): SyncRecord {
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

/** Answers that refused a call before anything was stored: a create that got only these is not in Feishu. */
const REFUSED: ReadonlySet<FeishuCategory> = new Set<FeishuCategory>(['permanent', 'rate_limited', 'auth', 'quota']);

/**
 * Whether Feishu may hold this create. Only a create never attempted, or refused outright on
 * its only attempt, is certainly absent; one that was confirmed, or that had an attempt end
 * without a definite answer (a lost reply, a timeout, attempts used up, a duplicate key, a
 * shutdown mid-call), may exist, also after `retry` or `backfill --resend` queued it again with
 * its attempts reset (the error code, approval_id and sent_at stay).
 */
export function mayExistInFeishu(c: SyncRecord): boolean {
  if (c.operation !== OPERATIONS.CREATE) return false;
  if (c.approvalId !== null || c.sentAt !== null) return true;
  if (c.errorCode !== null) {
    // Not a Feishu code (ABORTED, SEND_ERROR): the call may have been under way.
    const category = CODE_CATEGORY[c.errorCode as keyof typeof CODE_CATEGORY] as FeishuCategory | undefined;
    if (category === undefined || !REFUSED.has(category)) return true;
  }
  switch (c.status) {
    case OP_STATUS.SENT:
    case OP_STATUS.SENDING:
    case OP_STATUS.DEAD:
      return true;
    case OP_STATUS.FAILED:
      return c.attempts > 1; // attempts before the refusal may have been stored
    case OP_STATUS.PENDING:
      return c.attempts > 0;
    default:
      return false;
  }
}

/** The revoke that undoes `create` (looked up by its idempotent_id first when no approval_id is known). */
export function revokeOf(create: SyncRecord): NewOperation {
  return {
    kind: create.kind,
    sourceKey: create.sourceKey,
    version: create.version,
    generation: create.generation,
    operation: OPERATIONS.REVOKE,
    revokesId: create.id,
    userId: create.userId,
    effectiveDate: create.effectiveDate,
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
 * after the create it undoes. A create also waits while an earlier revoke on its key is
 * failed or dead (held): the version it replaces may still stand in Feishu, and sending it
 * would leave both approved. It goes once the revoke is retried and done.
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
              .where((w) =>
                w
                  .whereIn('e.status', IN_FLIGHT as string[])
                  .orWhere((held) => held.where('e.operation', OPERATIONS.REVOKE).whereIn('e.status', STOPPED as string[]).andWhere('s.operation', OPERATIONS.CREATE)),
              ),
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

/** Creates replaced by a newer version that Feishu cannot hold (`mayExistInFeishu` is false): pending or failed. */
export async function markSuperseded(trx: Knex, t: StateTables, ids: readonly number[], now = Date.now()): Promise<void> {
  for (const part of chunks(ids)) {
    await trx(t.syncRecords)
      .whereIn('id', part)
      .whereIn('status', [OP_STATUS.PENDING, OP_STATUS.FAILED])
      .update({ status: OP_STATUS.SUPERSEDED, updated_at: now });
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

/** The ids of the creates of these keys that a revoke undoes (or is planned to). */
export async function revokedCreateIds(db: Knex, t: StateTables, kind: Kind, keys: readonly string[]): Promise<Set<number>> {
  const out = new Set<number>();
  for (const part of chunks([...new Set(keys)])) {
    const rows = (await db(t.syncRecords).where({ kind, operation: OPERATIONS.REVOKE }).whereIn('source_key', part).whereNotNull('revokes_id').select('revokes_id')) as Row[];
    for (const r of rows) out.add(Number(r.revokes_id));
  }
  return out;
}

const RETRY_PAGE = 1000;

export interface RetryOutcome {
  /** Queued again: revokes, and creates that are still their record's current version. */
  requeued: number;
  /** Stale creates Feishu cannot hold: superseded. */
  superseded: number;
  /** Stale creates Feishu may hold: a revoke (looked up by idempotent_id first) is queued. */
  revokes: number;
  /** Creates of a version the source row no longer maps to (it is invalid now): left as they are. */
  kept: number;
}

/**
 * `retry`: queue failed or dead operations again (attempts start over), but only what the
 * source still wants. A revoke always goes again. A create goes again only while it is its
 * record's current version; one whose record changed or was cancelled since would bring a
 * stale version back, so it is superseded instead, or revoked when Feishu may hold it (a
 * dead create's reply was lost; the revoke looks it up by its idempotent_id first).
 */
export async function retryWithOutcome(
  db: Knex,
  t: StateTables,
  o: { status: 'failed' | 'dead'; kind?: Kind; sourceKey?: string; now?: number },
): Promise<RetryOutcome> {
  const now = o.now ?? Date.now();
  const outcome: RetryOutcome = { requeued: 0, superseded: 0, revokes: 0, kept: 0 };
  // Page by page in id order (an outage may leave many dead), each page one transaction.
  let after = 0;
  for (;;) {
    const more = await db.transaction(async (trx) => {
      let q = trx(t.syncRecords).where({ status: o.status }).andWhere('id', '>', after);
      if (o.kind) q = q.andWhere({ kind: o.kind });
      if (o.sourceKey) q = q.andWhere({ source_key: o.sourceKey });
      const stopped = ((await q.orderBy('id').limit(RETRY_PAGE)) as Row[]).map(fromRow);
      if (stopped.length === 0) return false;
      after = stopped.at(-1)!.id;
      const requeue: number[] = [];
      // Creates Feishu may hold start over with one attempt counted, like a crashed worker's
      // claims: a later change then revokes them, whatever answers overwrite the error code.
      const requeueInDoubt: number[] = [];
      const supersede: number[] = [];
      const revokes: NewOperation[] = [];
      const byKind = new Map<Kind, SyncRecord[]>();
      for (const op of stopped) {
        if (op.operation === OPERATIONS.REVOKE) requeue.push(op.id);
        else byKind.set(op.kind, [...(byKind.get(op.kind) ?? []), op]);
      }
      for (const [kind, creates] of byKind) {
        const keys = creates.map((c) => c.sourceKey);
        const records = await getRecords(trx, t, kind, keys);
        const history = await createsByKeys(trx, t, kind, keys);
        const undone = await revokedCreateIds(trx, t, kind, keys);
        for (const c of creates) {
          if (undone.has(c.id)) continue; // its revoke is planned already; that one is retried
          const rec = records.get(c.sourceKey);
          // The newest create of this version (a later generation wins); the rows an invalid
          // source row leaves are markers of another "version" and never make c stale.
          const newest = (history.get(c.sourceKey) ?? []).filter((h) => h.version === c.version).at(-1);
          const current = !rec || (rec.state !== 'inactive' && rec.version === c.version && newest?.id === c.id);
          if (current && rec?.state === 'invalid') outcome.kept++;
          else if (current) (mayExistInFeishu(c) ? requeueInDoubt : requeue).push(c.id);
          else if (mayExistInFeishu(c)) revokes.push(revokeOf(c));
          else supersede.push(c.id);
        }
      }
      for (const [ids, attempts] of [
        [requeue, 0],
        [requeueInDoubt, 1],
      ] as const) {
        for (const part of chunks(ids)) {
          outcome.requeued += await trx(t.syncRecords)
            .whereIn('id', part)
            .where({ status: o.status })
            .update({ status: OP_STATUS.PENDING, attempts, next_attempt_at: now, updated_at: now });
        }
      }
      await markSuperseded(trx, t, supersede, now);
      await insertOperations(trx, t, revokes, now);
      outcome.superseded += supersede.length;
      outcome.revokes += revokes.length;
      return stopped.length === RETRY_PAGE;
    });
    if (!more) return outcome;
  }
}

/** `retryWithOutcome`, returning how many operations were queued again. */
export async function retryOperations(db: Knex, t: StateTables, o: { status: 'failed' | 'dead'; kind?: Kind; sourceKey?: string; now?: number }): Promise<number> {
  return (await retryWithOutcome(db, t, o)).requeued;
}

/** A create held back by a failed or dead revoke of the version before it (see `claimDue`). */
export interface HeldCreate {
  readonly create: SyncRecord;
  readonly revoke: SyncRecord;
}

/**
 * Held creates, oldest first, each with the revoke it waits for, and how many there are.
 * Found from the failed and dead revokes (few, and indexed by status), not by scanning the
 * pending creates, however deep the outbox.
 */
export async function heldCreates(db: Knex, t: StateTables, limit = 20): Promise<{ total: number; items: HeldCreate[] }> {
  const joined = () =>
    db(`${t.syncRecords} as r`)
      .join(`${t.syncRecords} as c`, (j) => j.on('c.kind', 'r.kind').andOn('c.source_key', 'r.source_key').andOn('c.id', '>', 'r.id'))
      .where('r.operation', OPERATIONS.REVOKE)
      .whereIn('r.status', STOPPED as string[])
      .where({ 'c.operation': OPERATIONS.CREATE, 'c.status': OP_STATUS.PENDING });
  const counted = (await joined().countDistinct({ n: 'c.id' }).first()) as { n: number | string } | undefined;
  const pairs = (await joined().select({ createId: 'c.id', revokeId: 'r.id' }).orderBy('c.id').orderBy('r.id').limit(limit * 4)) as Array<{ createId: number | string; revokeId: number | string }>;
  const first = new Map<number, number>();
  for (const p of pairs) if (!first.has(Number(p.createId)) && first.size < limit) first.set(Number(p.createId), Number(p.revokeId));
  const ids = [...first.keys(), ...first.values()];
  const rows = new Map<number, SyncRecord>();
  for (const part of chunks(ids)) for (const r of (await db(t.syncRecords).whereIn('id', part)) as Row[]) rows.set(Number(r.id), fromRow(r));
  const items: HeldCreate[] = [];
  for (const [c, r] of first) if (rows.has(c) && rows.has(r)) items.push({ create: rows.get(c)!, revoke: rows.get(r)! });
  return { total: Number(counted?.n ?? 0), items };
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
  const rows = (await db(`${t.syncRecords} as s`)
    .select('s.*')
    .where((w) => w.whereIn('s.status', [OP_STATUS.FAILED, OP_STATUS.DEAD, OP_STATUS.INVALID]).orWhere((p) => p.where('s.status', OP_STATUS.PENDING).whereNotNull('s.error_code')))
    // A create that failed for a version since replaced by a sent one is history, not a problem.
    .whereNot((w) =>
      w
        .where('s.operation', OPERATIONS.CREATE)
        .whereIn('s.status', [OP_STATUS.FAILED, OP_STATUS.DEAD])
        .whereExists((q) =>
          q
            .select(db.raw('1'))
            .from(`${t.syncRecords} as n`)
            .whereRaw('n.kind = s.kind')
            .andWhereRaw('n.source_key = s.source_key')
            .andWhereRaw('n.id > s.id')
            .where('n.operation', OPERATIONS.CREATE)
            .whereIn('n.status', [OP_STATUS.SENT, OP_STATUS.REVOKED]),
        ),
    )
    .orderBy('s.updated_at', 'desc')
    .orderBy('s.id', 'desc')
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
  // A create with a revoke is being undone: sending it again would only be withdrawn again.
  // Ids first: MySQL cannot update a table that a subquery of the same statement reads.
  const ids = ((await db(`${t.syncRecords} as s`)
    .where({ 's.kind': o.kind, 's.operation': OPERATIONS.CREATE, 's.status': OP_STATUS.SENT })
    .whereBetween('s.effective_date', [o.from, o.to])
    .whereNotExists((sub) =>
      sub
        .select(db.raw('1'))
        .from(`${t.syncRecords} as r`)
        .whereRaw('r.kind = s.kind')
        .andWhereRaw('r.source_key = s.source_key')
        .andWhereRaw('r.id > s.id')
        .andWhereRaw('r.revokes_id = s.id'),
    )
    .pluck('s.id')) as Array<number | string>).map(Number);
  let n = 0;
  // The approval_id and sent_at stay: should the record change before the create is sent
  // again, the planner revokes it (mayExistInFeishu) instead of superseding it.
  for (const part of chunks(ids)) {
    n += await db(t.syncRecords).whereIn('id', part).where({ status: OP_STATUS.SENT }).update({ status: OP_STATUS.PENDING, attempts: 0, next_attempt_at: now, updated_at: now });
  }
  return n;
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
