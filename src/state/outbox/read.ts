import type { Knex } from 'knex';
import { keptCounts } from './counts.js';
import type { Kind } from '../../kinds.js';
import type { StateTables } from '../tables.js';
import { chunks } from '../records.js';
import { fromRow, IN_FLIGHT, OP_STATUS, OPERATION_TYPES, STOPPED, type OpStatus, type OutboxOperation, type Row } from './operation.js';

/* Read models of the outbox for `status`, metrics and the cycle summary. */

/** A create held back by a failed or dead revoke of the version before it (see `claimDue`). */
export interface HeldCreate {
  readonly create: OutboxOperation;
  readonly revoke: OutboxOperation;
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
      .where('r.operation', OPERATION_TYPES.REVOKE)
      .whereIn('r.status', STOPPED as string[])
      .where({ 'c.operation': OPERATION_TYPES.CREATE, 'c.status': OP_STATUS.PENDING });
  const counted = (await joined().countDistinct({ n: 'c.id' }).first()) as { n: number | string } | undefined;
  const pairs = (await joined().select({ createId: 'c.id', revokeId: 'r.id' }).orderBy('c.id').orderBy('r.id').limit(limit * 4)) as Array<{ createId: number | string; revokeId: number | string }>;
  const first = new Map<number, number>();
  for (const p of pairs) if (!first.has(Number(p.createId)) && first.size < limit) first.set(Number(p.createId), Number(p.revokeId));
  const ids = [...first.keys(), ...first.values()];
  const rows = new Map<number, OutboxOperation>();
  for (const part of chunks(ids)) for (const r of (await db(t.syncRecords).whereIn('id', part)) as Row[]) rows.set(Number(r.id), fromRow(r));
  const items: HeldCreate[] = [];
  for (const [c, r] of first) if (rows.has(c) && rows.has(r)) items.push({ create: rows.get(c)!, revoke: rows.get(r)! });
  return { total: Number(counted?.n ?? 0), items };
}

/** Operations per kind and status: the kept counts (outbox/counts.ts), a few rows to read. */
export async function statusCounts(db: Knex, t: StateTables): Promise<Array<{ kind: Kind; status: OpStatus; count: number }>> {
  return keptCounts(db, t);
}

/** The statuses of a source key's operations, oldest first (of one kind, or of every kind). */
export async function keyStatuses(db: Knex, t: StateTables, sourceKey: string, kind?: string): Promise<Array<{ kind: string; status: OpStatus }>> {
  const q = db(t.syncRecords).where({ source_key: sourceKey });
  if (kind) q.andWhere({ kind });
  return (await q.select('kind', 'status').orderBy('id')) as Array<{ kind: string; status: OpStatus }>;
}

/** Failed creates of a kind that Feishu refused with one code: their keys, user ids and when. */
export async function refusedCreates(db: Knex, t: StateTables, kind: Kind, feishuCode: number): Promise<Array<{ source_key: string; user_id: string | null; updated_at: number | string }>> {
  return (await db(t.syncRecords).where({ kind, operation: OPERATION_TYPES.CREATE, status: OP_STATUS.FAILED, feishu_code: feishuCode }).select('source_key', 'user_id', 'updated_at')) as Array<{
    source_key: string;
    user_id: string | null;
    updated_at: number | string;
  }>;
}

export async function oldestPending(db: Knex, t: StateTables): Promise<OutboxOperation | null> {
  const row = (await db(t.syncRecords).whereIn('status', IN_FLIGHT as string[]).orderBy('created_at').orderBy('id').first()) as Row | undefined;
  return row ? fromRow(row) : null;
}

/**
 * A subquery for `whereExists` over the sync table as `s`: a later create of the same key
 * was sent (and may since be revoked). A create failed or dead for a version replaced so is
 * history, not a problem.
 */
export function laterVersionSent(db: Knex, t: StateTables): (sub: Knex.QueryBuilder) => Knex.QueryBuilder {
  return (sub) =>
    sub
      .select(db.raw('1'))
      .from(`${t.syncRecords} as n`)
      .whereRaw('n.kind = s.kind')
      .andWhereRaw('n.source_key = s.source_key')
      .andWhereRaw('n.id > s.id')
      .where('n.operation', OPERATION_TYPES.CREATE)
      .whereIn('n.status', [OP_STATUS.SENT, OP_STATUS.REVOKED]);
}

/**
 * The most recent operations that carry an error (failed, dead, invalid, or pending a retry).
 * One query per status and operation, each a backward range of the (status, operation,
 * updated_at) index that stops at `limit`, merged here: a single OR'ed query read and sorted
 * every such row, 150 ms on a million operations.
 */
export async function latestErrors(db: Knex, t: StateTables, limit = 10): Promise<OutboxOperation[]> {
  const newest = async (status: OpStatus, operation: string): Promise<Row[]> => {
    let q = db(`${t.syncRecords} as s`).select('s.*').where({ 's.status': status, 's.operation': operation });
    if (status === OP_STATUS.PENDING) q = q.whereNotNull('s.error_code');
    // A create that failed for a version since replaced by a sent one is history, not a problem.
    if (operation === OPERATION_TYPES.CREATE && (STOPPED as string[]).includes(status)) q = q.whereNotExists(laterVersionSent(db, t));
    return (await q.orderBy('s.updated_at', 'desc').orderBy('s.id', 'desc').limit(limit)) as Row[];
  };
  const lists: Row[][] = [];
  for (const status of [OP_STATUS.FAILED, OP_STATUS.DEAD, OP_STATUS.INVALID, OP_STATUS.PENDING]) {
    for (const operation of [OPERATION_TYPES.CREATE, OPERATION_TYPES.REVOKE]) lists.push(await newest(status, operation));
  }
  return lists
    .flat()
    .map(fromRow)
    .sort((a, b) => b.updatedAt - a.updatedAt || b.id - a.id)
    .slice(0, limit);
}

export async function outboxDepth(db: Knex, t: StateTables): Promise<number> {
  const row = (await db(t.syncRecords).whereIn('status', IN_FLIGHT as string[]).count({ n: '*' }).first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}
