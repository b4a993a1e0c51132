import { KIND_ARRAY } from '../kinds.js';
import { withIdempotentId } from '../identity.js';
import { type PipelineDeps } from '../pipeline/deps.js';
import { idempotencyKey } from '../identity.js';
import { upsertRecords, type RecordState, type RecordUpsert } from '../state/records.js';
import { OP_STATUS, OPERATION_KEY, OPERATION_TYPES, insertOperationRows, insertOperations, revokeOf, updateOperations, type NewOperation, type OutboxOperation } from '../state/outbox.js';
import { str, type Drift, type FeishuItem } from './compare.js';
import { loadKeyRows } from './rows.js';

/* Writing reconcile's repairs into the outbox (one transaction) and telling, after the send, which are done. */

/**
 * The repairs, in one state transaction:
 * - missing / revoked in Feishu: the old create is marked revoked, the next generation of the
 *   same version is queued (a new idempotent_id: Feishu would refuse the old one as a duplicate);
 * - differs: a revoke of the current create, then the next generation;
 * - active in Feishu for a create that is not current: its revoke (queued again if it exists);
 *   for an item unknown to the sync table, a create row that stands for it and its revoke.
 */
export async function writeRepairs(deps: PipelineDeps, drifts: readonly Drift[], active: readonly FeishuItem[], known: ReadonlyMap<string, OutboxOperation>, now: number): Promise<void> {
  const { state, t } = deps;
  const namespace = deps.config.sync.namespace;
  const itemById = new Map(active.map((i) => [i.approvalId, i]));
  await state.transaction(async (trx) => {
    for (const d of drifts) {
      if (d.type === 'missing-in-feishu' || d.type === 'revoked-in-feishu' || d.type === 'differs') {
        const rows = await loadKeyRows(trx, t, d.kind, null, null, [d.sourceKey!]);
        const rec = rows.records.get(d.sourceKey!);
        const ops = rows.ops.get(d.sourceKey!) ?? [];
        const current = currentCreate(rec, ops);
        if (!rec || !current) continue;
        const next: NewOperation[] = [];
        if (d.type === 'differs') {
          if (d.approvalId && !current.approvalId) await trx(t.syncRecords).where({ id: current.id }).update({ approval_id: d.approvalId, updated_at: now });
          next.push(revokeOf(current));
        } else {
          await updateOperations(trx, t, (q) => q.where({ id: current.id }), { status: OP_STATUS.REVOKED, updated_at: now });
        }
        const used = ops.filter((op) => op.operation === OPERATION_TYPES.CREATE && op.version === current.version).map((op) => op.generation);
        const generation = Math.max(...used) + 1;
        const idem = idempotencyKey({ namespace, kind: d.kind, sourceKey: current.sourceKey, version: current.version, generation });
        next.push({
          kind: d.kind,
          sourceKey: current.sourceKey,
          version: current.version,
          generation,
          operation: OPERATION_TYPES.CREATE,
          idempotencyKey: idem,
          payload: withIdempotentId(current.payload as object, d.kind, idem),
          userId: current.userId,
          effectiveDate: current.effectiveDate,
        });
        await insertOperations(trx, t, next, now);
        const upsert: RecordUpsert = { kind: rec.kind, sourceKey: rec.sourceKey, version: rec.version, state: rec.state, userId: rec.userId, effectiveDate: rec.effectiveDate, reasons: rec.reasons, generation };
        await upsertRecords(trx, t, [upsert], now);
      } else if (d.type === 'active-in-feishu') {
        const create = d.idempotentId ? known.get(d.idempotentId) : undefined;
        if (create) {
          await trx(t.syncRecords).where({ id: create.id }).update({ approval_id: d.approvalId, updated_at: now });
          const revoke = (await trx(t.syncRecords).where({ operation: OPERATION_TYPES.REVOKE, revokes_id: create.id, kind: create.kind, source_key: create.sourceKey }).first('id')) as { id: number | string } | undefined;
          if (revoke) {
            // The revoke ran but the approval stands (it did nothing): the same revoke, again.
            await updateOperations(trx, t, (q) => q.where({ id: Number(revoke.id) }), { status: OP_STATUS.PENDING, attempts: 0, next_attempt_at: now, error_code: null, updated_at: now });
          } else {
            await insertOperations(trx, t, [revokeOf({ ...create, approvalId: d.approvalId })], now);
          }
        } else {
          const item = itemById.get(d.approvalId!);
          if (!item) continue;
          await insertStandIn(trx, t, item, now);
        }
      }
    }
  });
}

/** The source key of a create row standing for an approval of ours the sync table did not know. */
export function standInKey(approvalId: string): string {
  return `(feishu) ${approvalId}`;
}

/** A sent create row for an approval found in Feishu, and the revoke that undoes it. */
export async function insertStandIn(trx: PipelineDeps['state'], t: PipelineDeps['t'], item: FeishuItem, now: number): Promise<void> {
  const key = standInKey(item.approvalId);
  const start = str(item.item.start_time);
  const effectiveDate = start && /^\d{4}-\d{2}-\d{2}/.test(start) ? start.slice(0, 10) : null;
  await insertOperationRows(
    trx,
    t,
    [
      {
        kind: item.kind,
        source_key: key,
        version: 'unknown',
        generation: 0,
        operation: OPERATION_TYPES.CREATE,
        idempotency_key: item.idempotentId,
        status: OP_STATUS.SENT,
        attempts: 1,
        next_attempt_at: now,
        approval_id: item.approvalId,
        payload: JSON.stringify({ user_id: item.userId, date: item.date, [KIND_ARRAY[item.kind]]: [item.item] }),
        user_id: item.userId,
        effective_date: effectiveDate,
        created_at: now,
        updated_at: now,
        sent_at: now,
      },
    ],
    OPERATION_KEY,
  );
  const row = (await trx(t.syncRecords).where({ kind: item.kind, source_key: key, operation: OPERATION_TYPES.CREATE }).first('id')) as { id: number | string };
  await insertOperations(
    trx,
    t,
    [{ kind: item.kind, sourceKey: key, version: 'unknown', generation: 0, operation: OPERATION_TYPES.REVOKE, revokesId: Number(row.id), userId: item.userId, effectiveDate }],
    now,
  );
  // An earlier revoke of the same stand-in (that did nothing): queued again.
  await updateOperations(trx, t, (q) => q.where({ kind: item.kind, source_key: key, operation: OPERATION_TYPES.REVOKE }).whereNotIn('status', [OP_STATUS.PENDING, OP_STATUS.SENDING]), {
    status: OP_STATUS.PENDING,
    attempts: 0,
    next_attempt_at: now,
    error_code: null,
    updated_at: now,
  });
}

/** After the send: a repair is done when nothing of its key is left in the outbox. */
export async function settleRepairs(deps: PipelineDeps, drifts: Drift[]): Promise<void> {
  for (const d of drifts) {
    const key = d.sourceKey ?? (d.approvalId ? standInKey(d.approvalId) : null);
    if (key === null) continue;
    const left = (await deps.state(deps.t.syncRecords)
      .where({ kind: d.kind, source_key: key })
      .whereIn('status', [OP_STATUS.PENDING, OP_STATUS.SENDING, OP_STATUS.FAILED, OP_STATUS.DEAD])
      .first('id')) as unknown;
    d.repair = left ? 'queued' : 'repaired';
  }
}

/**
 * The create Feishu should hold approved for a key: the newest create of the record's current
 * version, when it was sent and no revoke undoes it. None for a cancelled record.
 */
export function currentCreate(rec: RecordState | undefined, ops: readonly OutboxOperation[]): OutboxOperation | null {
  if (!rec || rec.state === 'inactive' || rec.version === null) return null;
  const undone = new Set(ops.filter((op) => op.operation === OPERATION_TYPES.REVOKE && op.revokesId !== null).map((op) => op.revokesId!));
  const newest = ops.filter((op) => op.operation === OPERATION_TYPES.CREATE && op.version === rec.version).at(-1);
  if (!newest || newest.status !== OP_STATUS.SENT || undone.has(newest.id)) return null;
  return newest;
}
