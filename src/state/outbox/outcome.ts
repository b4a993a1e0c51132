import type { Knex } from 'knex';
import type { StateTables } from '../tables.js';
import { updateOperations } from './counts.js';
import { OP_STATUS, type OpStatus } from './operation.js';

/* What a sender records about an operation it holds the lease on. */

/** Update the operation `owner` holds the lease on (the counts follow). */
async function updateLeased(db: Knex, t: StateTables, id: number, owner: string, patch: Record<string, unknown> & { status: OpStatus }): Promise<number> {
  return updateOperations(db, t, (q) => q.where({ id, lease_owner: owner }), patch, { from: OP_STATUS.SENDING });
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
  return updateOperations(
    db,
    t,
    (q) =>
      q
        .whereIn(
          'id',
          items.map((i) => i.id),
        )
        .andWhere({ lease_owner: o.owner }),
    {
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
    },
    { from: OP_STATUS.SENDING },
  );
}

/** Back to pending, due again at `nextAttemptAt`. */
export async function markRetry(
  db: Knex,
  t: StateTables,
  id: number,
  o: { owner: string; nextAttemptAt: number; code: number | null; msg: string | null; errorCode: string | null; countAttempt: boolean; now?: number },
): Promise<boolean> {
  const n = await updateLeased(db, t, id, o.owner, backToPending(db, o));
  return n > 0;
}

/** The columns that hand a leased operation back: pending, due at `nextAttemptAt`, the outcome noted. */
function backToPending(
  db: Knex,
  o: { nextAttemptAt: number; code: number | null; msg: string | null; errorCode: string | null; countAttempt: boolean; now?: number },
): Record<string, unknown> & { status: OpStatus } {
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
    const n = await updateLeased(db, t, id, o.owner, {
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
  const n = await updateLeased(db, t, id, o.owner, {
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

/** The create a revoke undid is now revoked in Feishu. */
export async function markRevoked(db: Knex, t: StateTables, createId: number, now = Date.now()): Promise<void> {
  await updateOperations(db, t, (q) => q.where({ id: createId }), { status: OP_STATUS.REVOKED, updated_at: now });
}
