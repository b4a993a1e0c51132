import type { Knex } from 'knex';
import type { Kind } from '../../kinds.js';
import type { StateTables } from '../tables.js';
import { chunks } from '../records.js';
import { insertOperationRows, updateOperations } from './counts.js';
import { fromRow, OP_STATUS, OPERATION_TYPES, type NewOperation, type OutboxOperation, type Row } from './operation.js';

/** An operation's unique key: one create or revoke per version and generation of a record. */
export const OPERATION_KEY = ['kind', 'source_key', 'version', 'operation', 'generation'] as const;

/* What planning writes and reads: new operations, superseded creates, a key's history. */

/**
 * Add planned operations. Re-planning the same version (a lookback re-read, a crash before
 * the watermark moved) hits the unique key and is ignored: planning is idempotent.
 */
export async function insertOperations(trx: Knex, t: StateTables, ops: readonly NewOperation[], now = Date.now()): Promise<void> {
  for (const part of chunks(ops, 200)) {
    await insertOperationRows(
      trx,
      t,
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
      OPERATION_KEY,
    );
  }
}

/** Creates replaced by a newer version that Feishu cannot hold (`mayExistInFeishu` is false): pending or failed. */
export async function markSuperseded(trx: Knex, t: StateTables, ids: readonly number[], now = Date.now()): Promise<void> {
  for (const part of chunks(ids)) {
    await updateOperations(trx, t, (q) => q.whereIn('id', part).whereIn('status', [OP_STATUS.PENDING, OP_STATUS.FAILED]), { status: OP_STATUS.SUPERSEDED, updated_at: now });
  }
}

export async function findById(db: Knex, t: StateTables, id: number): Promise<OutboxOperation | null> {
  const row = (await db(t.syncRecords).where({ id }).first()) as Row | undefined;
  return row ? fromRow(row) : null;
}

/** Every create row of these keys, oldest first (planning picks generations and what to undo). */
export async function createsByKeys(db: Knex, t: StateTables, kind: Kind, keys: readonly string[]): Promise<Map<string, OutboxOperation[]>> {
  const out = new Map<string, OutboxOperation[]>();
  for (const part of chunks([...new Set(keys)])) {
    const rows = (await db(t.syncRecords)
      .where({ kind, operation: OPERATION_TYPES.CREATE })
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
    const rows = (await db(t.syncRecords).where({ kind, operation: OPERATION_TYPES.REVOKE }).whereIn('source_key', part).whereNotNull('revokes_id').select('revokes_id')) as Row[];
    for (const r of rows) out.add(Number(r.revokes_id));
  }
  return out;
}
