import type { Knex } from 'knex';
import type { Kind } from '../kinds.js';
import type { Logger } from '../log/logger.js';
import type { MappedRow } from '../mapping/map.js';
import type { Cursor } from '../state/watermarks.js';
import type { StateTables } from '../state/tables.js';
import { getRecords, upsertRecords, type RecordUpsert } from '../state/records.js';
import {
  createsByKeys,
  insertOperations,
  markSuperseded,
  mayExistInFeishu,
  OP_STATUS,
  OPERATION_TYPES,
  revokedCreateIds,
  revokeOf,
  type NewOperation,
  type OutboxOperation,
} from '../state/outbox.js';
import { setWatermark } from '../state/watermarks.js';
import { reopenInvalid, supersedeInvalid } from '../state/invalidOps.js';
import { idempotencyKey, versionHash, withIdempotentId } from '../identity.js';

export interface PlanCounts {
  read: number;
  created: number;
  revoked: number;
  superseded: number;
  unchanged: number;
  inactive: number;
  invalid: number;
  /** Rows held back because their cursor time is beyond the source's clock (not planned). */
  future: number;
  /** Revokes of records gone from the source that a rescan refused to plan (too many at once). */
  revokesRefused: number;
}

export function emptyPlanCounts(): PlanCounts {
  return { read: 0, created: 0, revoked: 0, superseded: 0, unchanged: 0, inactive: 0, invalid: 0, future: 0, revokesRefused: 0 };
}

export function addCounts<T extends object>(into: T, more: T): T {
  for (const [k, v] of Object.entries(more)) {
    if (typeof v === 'number') (into as Record<string, number>)[k] = ((into as Record<string, number>)[k] ?? 0) + v;
  }
  return into;
}

export interface PlanDeps {
  readonly state: Knex;
  readonly t: StateTables;
  readonly namespace: string;
  readonly logger: Logger;
}

/** The source key of an invalid row whose key itself is missing. */
const NO_KEY = '(no key)';

/** Statuses of a create that is, or may become, an approval in Feishu. */
const LIVE: readonly string[] = [OP_STATUS.PENDING, OP_STATUS.SENDING, OP_STATUS.SENT];
/**
 * Statuses of a create that gave up until `retry`. Feishu may hold it all the same (a dead
 * create ran out of attempts on ambiguous outcomes), so a change or cancellation undoes it:
 * revoked (looked up first) unless it is certainly absent (mayExistInFeishu).
 */
const STOPPED: readonly string[] = [OP_STATUS.FAILED, OP_STATUS.DEAD];

class DryRun extends Error {}

/**
 * Rows of one page that share a key (a join that multiplies rows) would each win in turn;
 * when they differ, the key is invalid until the source is fixed. Rows without a key are one
 * invalid record (they cannot be told apart): written once per page, not once per row.
 */
function dedupe(kind: Kind, mapped: readonly MappedRow[]): MappedRow[] {
  const byKey = new Map<string, MappedRow[]>();
  const out: MappedRow[] = [];
  let keyless = false;
  for (const m of mapped) {
    if (m.sourceKey === null) {
      if (!keyless) out.push(m);
      keyless = true;
      continue;
    }
    const list = byKey.get(m.sourceKey) ?? [];
    list.push(m);
    byKey.set(m.sourceKey, list);
  }
  for (const [key, list] of byKey) {
    const signatures = new Set(list.map((m) => (m.outcome === 'valid' ? m.version : m.outcome === 'invalid' ? `x${m.reasons.join('|')}` : m.outcome)));
    if (list.length > 1 && signatures.size > 1) {
      out.push({ outcome: 'invalid', kind, sourceKey: key, reasons: [`the source returned ${list.length} different rows for key ${key} (does a join multiply rows?)`] });
    } else out.push(list[0]!);
  }
  return out;
}

/**
 * Plan one page: compare each mapped row with what Feishu holds for its key and write the
 * operations, the per-record state and (optionally) the watermark in ONE state transaction.
 * That shared commit is the crash-safety of the read side: the watermark never passes a row
 * whose operations are not stored, and re-planning an already planned version is a no-op
 * (unique key), so a crash before the commit only means the page is read again.
 *
 * new → create; changed → revoke the previous approval, then create the new version;
 * cancelled / rejected / deleted → revoke; unchanged → nothing; invalid → recorded once with
 * its reasons, the earlier approval (if any) left standing until the row is fixed.
 * Undoing covers the live create and every failed or dead one not undone yet (a `retry` would
 * otherwise bring the old version back). A create Feishu cannot hold (never attempted, or
 * refused outright) is superseded; any other is revoked, and a revoke of a create without an
 * approval_id looks it up by its idempotent_id first.
 */
export async function planRows(
  deps: PlanDeps,
  kind: Kind,
  rows: readonly MappedRow[],
  opts: { watermark?: Cursor | null; dryRun?: boolean; now?: number } = {},
): Promise<PlanCounts> {
  const counts = emptyPlanCounts();
  counts.read = rows.length;
  const mapped = dedupe(kind, rows);
  const now = opts.now ?? Date.now();
  const invalidLogs: Array<{ key: string; reasons: string[] }> = [];
  try {
    await deps.state.transaction(async (trx) => {
      const keys = mapped.map((m) => m.sourceKey ?? NO_KEY);
      const records = await getRecords(trx, deps.t, kind, keys);
      const creates = await createsByKeys(trx, deps.t, kind, keys);
      const undone = await revokedCreateIds(trx, deps.t, kind, keys);
      const ops: NewOperation[] = [];
      const supersede: number[] = [];
      const upserts: RecordUpsert[] = [];
      const resolved: number[] = [];
      const reopened: number[] = [];

      const undo = (list: ReadonlyArray<OutboxOperation | undefined>) => {
        for (const c of list) {
          if (!c) continue;
          if (mayExistInFeishu(c)) {
            ops.push(revokeOf(c));
            counts.revoked++;
          } else {
            supersede.push(c.id);
            counts.superseded++;
          }
        }
      };

      for (const m of mapped) {
        const key = m.sourceKey ?? NO_KEY;
        const rec = records.get(key);
        const history = creates.get(key) ?? [];
        const open = history.filter((c) => !undone.has(c.id));
        const current = [...open].reverse().find((c) => LIVE.includes(c.status));
        const stopped = open.filter((c) => STOPPED.includes(c.status));
        // Earlier invalid rows of this key no longer describe it (a new invalid one is kept below).
        const invalidVersion = m.outcome === 'invalid' ? `x${versionHash(m.reasons).slice(0, 39)}` : null;
        for (const c of history) {
          if (c.status === OP_STATUS.INVALID && c.version !== invalidVersion) resolved.push(c.id);
          else if (c.status === OP_STATUS.SUPERSEDED && c.version === invalidVersion) reopened.push(c.id);
        }
        if (m.outcome === 'valid') {
          if (rec?.version === m.version) {
            counts.unchanged++;
            if (rec.state !== 'active') upserts.push({ ...rec, state: 'active', reasons: null });
            continue;
          }
          undo([current, ...stopped]);
          const used = history.filter((c) => c.version === m.version).map((c) => c.generation);
          const generation = used.length > 0 ? Math.max(...used) + 1 : 0;
          const idem = idempotencyKey({ namespace: deps.namespace, kind, sourceKey: key, version: m.version, generation });
          const payload = withIdempotentId(m.request, kind, idem);
          ops.push({
            kind,
            sourceKey: key,
            version: m.version,
            generation,
            operation: OPERATION_TYPES.CREATE,
            idempotencyKey: idem,
            payload,
            userId: m.userId,
            effectiveDate: m.effectiveDate,
          });
          upserts.push({ kind, sourceKey: key, version: m.version, state: 'active', userId: m.userId, effectiveDate: m.effectiveDate, reasons: null, generation });
          counts.created++;
        } else if (m.outcome === 'inactive') {
          counts.inactive++;
          undo([current, ...stopped]);
          if (rec || current) {
            upserts.push({
              kind,
              sourceKey: key,
              version: null,
              state: 'inactive',
              userId: rec?.userId ?? current?.userId ?? null,
              effectiveDate: rec?.effectiveDate ?? current?.effectiveDate ?? null,
              reasons: null,
              generation: rec?.generation ?? 0,
            });
          }
        } else {
          counts.invalid++;
          const same = rec?.state === 'invalid' && JSON.stringify(rec.reasons) === JSON.stringify(m.reasons);
          if (same) continue;
          ops.push({
            kind,
            sourceKey: key,
            version: invalidVersion!,
            generation: 0,
            operation: OPERATION_TYPES.CREATE,
            status: OP_STATUS.INVALID,
            reasons: m.reasons,
          });
          upserts.push({
            kind,
            sourceKey: key,
            version: rec?.version ?? null,
            state: 'invalid',
            userId: rec?.userId ?? null,
            effectiveDate: rec?.effectiveDate ?? null,
            reasons: m.reasons,
            generation: rec?.generation ?? 0,
          });
          invalidLogs.push({ key, reasons: m.reasons });
        }
      }
      await markSuperseded(trx, deps.t, supersede, now);
      await supersedeInvalid(trx, deps.t, resolved, now);
      await reopenInvalid(trx, deps.t, reopened, now);
      await insertOperations(trx, deps.t, ops, now);
      await upsertRecords(trx, deps.t, upserts, now);
      if (opts.watermark) await setWatermark(trx, deps.t, kind, opts.watermark, now);
      if (opts.dryRun) throw new DryRun();
    });
  } catch (err) {
    if (!(err instanceof DryRun)) throw err;
  }
  if (!opts.dryRun) {
    for (const i of invalidLogs) deps.logger.warn('invalid source row: recorded, not sent', { kind, sourceKey: i.key, reasons: i.reasons });
  }
  return counts;
}
