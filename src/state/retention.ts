import type { Knex } from 'knex';
import type { StateTables } from './tables.js';
import { OP_STATUS, OPERATION_TYPES } from './outbox.js';
import { deleteOperations } from './outbox/counts.js';

/**
 * Retention (`state.retention_days`): the runs table and the finished history of the sync
 * table would otherwise grow for ever (0.2–0.5 GB a year of run rows alone, by default in
 * the HR database).
 *
 * Only what no later operation can need is deleted, once it is older than the cut-off:
 * - runs (one still 'running' after that long belongs to a process that died);
 * - superseded creates (never sent) and invalid rows' entries (the records table keeps the
 *   current reasons, and an unchanged invalid row is not recorded again);
 * - revoked creates and the sent revokes that undid them: Feishu no longer holds them;
 * - stored Feishu lookups (what the console's record page shows of the latest one).
 * Never a sent create: its approval_id is what a later change or cancellation revokes,
 * however old it is. Never failed, dead, pending or sending operations: they are still to
 * be decided by the worker or an operator.
 *
 * Deletes go in batches of ids (each a short transaction, no lock on the whole table) and
 * stop after `maxRows` per call: a cycle spends a bounded time on it, the next one goes on.
 */
export interface RetentionCounts {
  runs: number;
  operations: number;
}

const FINISHED: ReadonlyArray<{ status: string; operation: string }> = [
  { status: OP_STATUS.SUPERSEDED, operation: OPERATION_TYPES.CREATE },
  { status: OP_STATUS.INVALID, operation: OPERATION_TYPES.CREATE },
  { status: OP_STATUS.REVOKED, operation: OPERATION_TYPES.CREATE },
  { status: OP_STATUS.SENT, operation: OPERATION_TYPES.REVOKE },
];

const DAY_MS = 86_400_000;

export async function applyRetention(
  db: Knex,
  t: StateTables,
  o: { retentionDays: number; now?: number; batchSize?: number; maxRows?: number; between?: () => Promise<void> },
): Promise<RetentionCounts> {
  const counts: RetentionCounts = { runs: 0, operations: 0 };
  if (o.retentionDays <= 0) return counts;
  const cutoff = (o.now ?? Date.now()) - o.retentionDays * DAY_MS;
  const batch = o.batchSize ?? 1000;
  let budget = o.maxRows ?? 20_000;
  // Ids first, then delete by id: MySQL allows no LIMIT in a DELETE's subquery, and a plain
  // DELETE … LIMIT does not exist on PostgreSQL.
  const drain = async (pick: () => Knex.QueryBuilder, remove: (ids: number[]) => Promise<unknown>): Promise<number> => {
    let n = 0;
    while (budget > 0) {
      const ids = ((await pick().limit(Math.min(batch, budget))) as Array<{ id: number | string }>).map((r) => Number(r.id));
      if (ids.length === 0) break;
      await remove(ids);
      n += ids.length;
      budget -= ids.length;
      await o.between?.();
      if (ids.length < batch) break;
    }
    return n;
  };
  counts.runs = await drain(
    () => db(t.runs).select('id').where('started_at', '<', cutoff).orderBy('started_at'),
    (ids) => db(t.runs).whereIn('id', ids).delete(),
  );
  for (const f of FINISHED) {
    counts.operations += await drain(
      () => db(t.syncRecords).select('id').where({ status: f.status, operation: f.operation }).andWhere('updated_at', '<', cutoff).orderBy('updated_at'),
      // Still of that status when deleted (the counts follow): a row changed meanwhile stays.
      (ids) => deleteOperations(db, t, (q) => q.whereIn('id', ids).where({ status: f.status, operation: f.operation })),
    );
  }
  // The latest lookup of an item: the record page's history, not the worker's (few rows).
  await db(t.lookups).where('looked_at', '<', cutoff).delete();
  return counts;
}
