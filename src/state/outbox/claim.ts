import type { Knex } from 'knex';
import type { Kind } from '../../kinds.js';
import { AppError } from '../../errors.js';
import { dialectFor } from '../../db/dialect.js';
import type { StateTables } from '../tables.js';
import { chunks } from '../records.js';
import { countMoves, updateOperations } from './counts.js';
import { fromRow, IN_FLIGHT, OP_STATUS, OPERATION_TYPES, STOPPED, type OpStatus, type OutboxOperation, type Row } from './operation.js';

/* Leases: claiming due operations, renewing, handing them back. */

function isLockConflict(db: Knex, err: unknown): boolean {
  return dialectFor(db).lockConflictCodes.includes(String((err as { code?: unknown }).code));
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
): Promise<OutboxOperation[]> {
  const now = opts.now ?? Date.now();
  const dialect = dialectFor(db);
  try {
    return await db.transaction(async (trx) => {
      // Two ordered scans instead of one OR: leases that ran out (rare), then due operations,
      // each an index range (status, id) that stops at the limit. One OR'ed query made the
      // planner read and sort every due row on each claim: seconds with a million queued.
      const scan = (status: OpStatus, due: (q: Knex.QueryBuilder) => Knex.QueryBuilder, limit: number) => {
        let q = due(trx(`${t.syncRecords} as s`).select('s.id', 's.kind', 's.status').where('s.status', status))
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
                  .orWhere((held) => held.where('e.operation', OPERATION_TYPES.REVOKE).whereIn('e.status', STOPPED as string[]).andWhere('s.operation', OPERATION_TYPES.CREATE)),
              ),
          )
          .orderBy('s.id')
          .limit(limit);
        if (opts.kinds && opts.kinds.length > 0) q = q.whereIn('s.kind', opts.kinds as string[]);
        if (dialect.skipLocked) q = q.forUpdate().skipLocked();
        return q as Promise<Array<{ id: number | string; kind: string; status: string }>>;
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
      await countMoves(
        trx,
        t,
        found.map((r) => ({ kind: r.kind, from: r.status, to: OP_STATUS.SENDING })),
      );
      const rows = (await trx(t.syncRecords).whereIn('id', ids).orderBy('id')) as Row[];
      return rows.map(fromRow);
    }, dialect.claimIsolation ? { isolationLevel: dialect.claimIsolation } : undefined);
  } catch (err) {
    if (isLockConflict(db, err)) {
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

/**
 * Hand leased operations back, attempts unchanged: all of this owner's, or only `ids` (the
 * sender's claimed-but-never-started ones; what it did start keeps its lease until recorded).
 */
export async function releaseLeases(db: Knex, t: StateTables, owner: string, o: { ids?: readonly number[]; now?: number } = {}): Promise<number> {
  const now = o.now ?? Date.now();
  if (o.ids && o.ids.length === 0) return 0;
  return updateOperations(
    db,
    t,
    (q) => {
      q.where({ lease_owner: owner });
      return o.ids ? q.whereIn('id', o.ids as number[]) : q;
    },
    { status: OP_STATUS.PENDING, lease_owner: null, lease_until: null, next_attempt_at: now, updated_at: now },
    { from: OP_STATUS.SENDING },
  );
}

/**
 * Called right after the leader lock is taken: no other sender can be alive now, so claims
 * left 'sending' by a crashed leader are handed back at once instead of after their lease.
 * Each counts as an attempt: the dead worker may have sent it, and Feishu may hold it, so a
 * create that is then replaced must be revoked, not quietly superseded.
 */
export async function reclaimOrphanedLeases(db: Knex, t: StateTables, now = Date.now()): Promise<number> {
  return updateOperations(db, t, (q) => q.where({ status: OP_STATUS.SENDING }), {
    status: OP_STATUS.PENDING,
    attempts: db.raw('attempts + 1'),
    lease_owner: null,
    lease_until: null,
    next_attempt_at: now,
    updated_at: now,
  });
}
