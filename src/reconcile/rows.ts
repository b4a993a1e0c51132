import type { Knex } from 'knex';
import type { Kind } from '../kinds.js';
import type { StateTables } from '../state/tables.js';
import { chunks, getRecords, type RecordState } from '../state/records.js';
import { fromRow, type OutboxOperation } from '../state/outbox.js';

/** The sync table's view of some keys of one kind: each key's record state and every operation, oldest first. */
export interface KeyRows {
  readonly keys: string[];
  readonly records: Map<string, RecordState>;
  readonly ops: Map<string, OutboxOperation[]>;
  /** Every user those keys were sent for. */
  readonly users: Set<string>;
}

/**
 * The keys whose effective date is in [from, to] (the records table, indexed by kind and
 * date), or the given keys, with their records and operations.
 */
export async function loadKeyRows(db: Knex, t: StateTables, kind: Kind, from: string | null, to: string | null, given?: readonly string[]): Promise<KeyRows> {
  const keys =
    given !== undefined
      ? [...new Set(given)]
      : ((await db(t.records).where({ kind }).whereBetween('effective_date', [from!, to!]).orderBy('source_key').pluck('source_key')) as string[]);
  const records = await getRecords(db, t, kind, keys);
  const ops = new Map<string, OutboxOperation[]>();
  const users = new Set<string>();
  for (const r of records.values()) if (r.userId) users.add(r.userId);
  for (const part of chunks(keys)) {
    const rows = (await db(t.syncRecords).where({ kind }).whereIn('source_key', part).orderBy('id')) as Array<Record<string, unknown>>;
    for (const row of rows) {
      const op = fromRow(row);
      const list = ops.get(op.sourceKey) ?? [];
      list.push(op);
      ops.set(op.sourceKey, list);
      if (op.userId && op.operation === 'create' && op.status !== 'invalid') users.add(op.userId);
    }
  }
  return { keys, records, ops, users };
}

/**
 * Creates by idempotent_id, for approvals of ours whose key lies outside the window (the record
 * moved to other dates since). The column has no index of its own: one query for all of them.
 */
export async function syncRowsByIdempotencyKey(db: Knex, t: StateTables, keys: readonly string[]): Promise<Map<string, OutboxOperation>> {
  const out = new Map<string, OutboxOperation>();
  for (const part of chunks([...new Set(keys)])) {
    const rows = (await db(t.syncRecords).where({ operation: 'create' }).whereIn('idempotency_key', part)) as Array<Record<string, unknown>>;
    for (const row of rows) {
      const op = fromRow(row);
      if (op.idempotencyKey) out.set(op.idempotencyKey, op);
    }
  }
  return out;
}
