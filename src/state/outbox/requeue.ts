import type { Knex } from 'knex';
import type { Kind } from '../../kinds.js';
import type { StateTables } from '../tables.js';
import { chunks, getRecords } from '../records.js';
import { updateOperations } from './counts.js';
import { fromRow, mayExistInFeishu, OP_STATUS, OPERATION_TYPES, revokeOf, type NewOperation, type OutboxOperation, type Row } from './operation.js';
import { createsByKeys, insertOperations, markSuperseded, revokedCreateIds } from './plan.js';

/* Operator actions that queue operations again: `retry` and `backfill --resend`. */

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
      const byKind = new Map<Kind, OutboxOperation[]>();
      for (const op of stopped) {
        if (op.operation === OPERATION_TYPES.REVOKE) requeue.push(op.id);
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
          outcome.requeued += await updateOperations(trx, t, (q) => q.whereIn('id', part).where({ status: o.status }), {
            status: OP_STATUS.PENDING,
            attempts,
            next_attempt_at: now,
            updated_at: now,
          });
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
    .where({ 's.kind': o.kind, 's.operation': OPERATION_TYPES.CREATE, 's.status': OP_STATUS.SENT })
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
    n += await updateOperations(db, t, (q) => q.whereIn('id', part).where({ status: OP_STATUS.SENT }), { status: OP_STATUS.PENDING, attempts: 0, next_attempt_at: now, updated_at: now });
  }
  return n;
}
