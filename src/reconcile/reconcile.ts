import { DateTime } from 'luxon';
import { AppError } from '../errors.js';
import { FeishuError, isFeishuError } from '../feishu/errors.js';
import { chunkUserIds, dateWindows, latestQueryableDate } from '../feishu/lookup.js';
import type { QueriedUserApproval, QueryUserApprovalsInput } from '../feishu/client.js';
import { type Kind } from '../kinds.js';
import { sender } from '../pipeline/wiring.js';
import { type PipelineDeps } from '../pipeline/deps.js';
import { idempotencyKey } from '../identity.js';
import { OP_STATUS, type OutboxOperation } from '../state/outbox.js';
import { quotaFigures } from '../state/quota.js';
import type { SendCounts } from '../send/sender.js';
import { differences, flattenItems, isOurs, sentItem, str, type Drift, type DriftType, type FeishuItem } from './compare.js';
import { loadKeyRows, syncRowsByIdempotencyKey, type KeyRows } from './rows.js';
import { currentCreate, settleRepairs, writeRepairs } from './repair.js';


export type { Drift } from './compare.js';

export interface ReconcileResult {
  readonly from: string;
  readonly to: string;
  /** The last date queried: `to`, or today + 1 when `to` lies beyond what the query accepts. */
  readonly queriedTo: string;
  readonly kinds: readonly Kind[];
  readonly users: number;
  /** Current creates compared. */
  readonly checked: number;
  /** Keys skipped because operations on them are still in the outbox (pending, sending, failed, dead). */
  readonly busy: number;
  /** Query calls made. */
  readonly calls: number;
  readonly durationMs: number;
  readonly drifts: Drift[];
  /** Drift (foreign records aside) that is not repaired: what makes the exit code 1. */
  readonly driftLeft: number;
  readonly send: SendCounts | null;
}

export interface ReconcileOptions {
  readonly from: string;
  readonly to: string;
  readonly kinds: readonly Kind[];
  readonly repair: boolean;
  readonly signal?: AbortSignal | undefined;
  /** Called after each query call: calls done, calls planned (the revoked-status pass adds to it). */
  readonly onProgress?: ((done: number, total: number) => void) | undefined;
  readonly now?: number | undefined;
}

const ymdOf = (iso: string) => Number(iso.replace(/-/g, ''));

/** How many query calls the status-2 pass takes: what the quota check compares with what is left. */
export function plannedCalls(users: number, from: string, to: string, nowMs: number, zone: string): number {
  if (users === 0) return 0;
  return dateWindows(ymdOf(from), ymdOf(to), nowMs, zone, 'PeriodTime').length * Math.ceil(users / 50);
}

/**
 * Compare Feishu with the sync table for the records whose effective date lies in [from, to],
 * and with `repair` fix what can be fixed through the outbox, then send it. Reads Feishu's
 * query API in calls of at most 50 users and 29 days (the client's limiter paces them and the
 * quota meter counts them); nothing else is called unless `repair` queued operations.
 */
export async function reconcile(deps: PipelineDeps, o: ReconcileOptions): Promise<ReconcileResult> {
  const started = Date.now();
  const now = o.now ?? Date.now();
  const zone = deps.config.feishu.time_zone;
  const namespace = deps.config.sync.namespace;
  const employeeType = deps.config.feishu.employee_type;
  const cap = latestQueryableDate(now, zone).toISODate()!;
  const queriedTo = o.to < cap ? o.to : cap;

  // 1. What the sync table holds in the window, per kind.
  const byKind = new Map<Kind, KeyRows>();
  const users = new Set<string>();
  for (const kind of o.kinds) {
    const rows = await loadKeyRows(deps.state, deps.t, kind, o.from, queriedTo);
    byKind.set(kind, rows);
    for (const u of rows.users) users.add(u);
  }
  const userList = [...users].sort();

  // 2. Within the quota?
  const planned = queriedTo < o.from ? 0 : plannedCalls(userList.length, o.from, queriedTo, now, zone);
  if (deps.config.feishu.monthly_quota !== undefined && planned > 0) {
    const q = await quotaFigures(deps.state, deps.t, { zone, limit: deps.config.feishu.monthly_quota, now });
    const left = Math.max(0, q.limit! - q.used);
    if (planned > left) {
      throw new AppError('RECONCILE_QUOTA', `reconcile needs at least ${planned} query call(s) but only ${left} of the monthly quota (${q.used} of ${q.limit} used in ${q.month}) are left: narrow --from/--to or wait for the next month`);
    }
  }

  // 3. Read what Feishu holds as approved.
  let calls = 0;
  let total = planned;
  // Calls run `feishu.concurrency` at a time; the client's limiter keeps them within the rate limit.
  const query = async (userIds: readonly string[], status: number): Promise<QueriedUserApproval[]> => {
    const out: QueriedUserApproval[] = [];
    if (queriedTo < o.from) return out;
    const bodies: QueryUserApprovalsInput[] = [];
    for (const w of dateWindows(ymdOf(o.from), ymdOf(queriedTo), now, zone, 'PeriodTime')) {
      for (const part of chunkUserIds(userIds)) bodies.push({ user_ids: part, check_date_from: w.from, check_date_to: w.to, check_date_type: w.type, status } as QueryUserApprovalsInput);
    }
    let next = 0;
    let failure: unknown = null;
    const worker = async () => {
      while (failure === null && next < bodies.length) {
        const body = bodies[next++]!;
        if (o.signal?.aborted) throw new AppError('RECONCILE_ABORTED', 'reconcile interrupted');
        try {
          out.push(...(await deps.client.queryUserApprovals(employeeType, body, { signal: o.signal })).user_approvals);
        } catch (err) {
          failure ??= err;
        } finally {
          calls++;
          o.onProgress?.(calls, total);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(deps.config.feishu.concurrency, bodies.length)) }, worker));
    if (failure !== null) throw failure;
    return out;
  };
  const active = flattenItems(await queryOrExplain(() => query(userList, 2)), o.kinds);
  const activeById = new Map(active.map((i) => [i.approvalId, i]));
  const activeByIdem = new Map(active.filter((i) => i.idempotentId).map((i) => [i.idempotentId!, i]));
  const matched = new Set<string>();

  const drifts: Drift[] = [];
  const candidatesMissing: Array<{ kind: Kind; create: OutboxOperation }> = [];
  let checked = 0;
  let busy = 0;

  // 4. Every current create: approved as sent?
  for (const [kind, rows] of byKind) {
    for (const key of rows.keys) {
      const ops = rows.ops.get(key) ?? [];
      if (isBusy(ops)) {
        // Items of a busy key are the sender's (or the operator's) to settle, not drift.
        busy++;
        for (const op of ops) {
          if (op.approvalId) matched.add(op.approvalId);
          const byIdem = op.idempotencyKey ? activeByIdem.get(op.idempotencyKey) : undefined;
          if (byIdem) matched.add(byIdem.approvalId);
        }
        continue;
      }
      const current = currentCreate(rows.records.get(key), ops);
      if (!current) continue;
      checked++;
      const found = (current.approvalId ? activeById.get(current.approvalId) : undefined) ?? (current.idempotencyKey ? activeByIdem.get(current.idempotencyKey) : undefined);
      if (!found) {
        candidatesMissing.push({ kind, create: current });
        continue;
      }
      matched.add(found.approvalId);
      const diff = differences(sentItem(kind, current.payload), zone, found);
      if (diff.length > 0) drifts.push(driftOf('differs', kind, key, found.userId, found, diff.join('; ')));
    }
  }
  // 5. Not approved: withdrawn (under 4 or 3) or absent? Only the users concerned are asked.
  if (candidatesMissing.length > 0) {
    const missUsers = [...new Set(candidatesMissing.map((c) => c.create.userId ?? ''))].filter(Boolean);
    const perStatus = dateWindowsCount(o.from, queriedTo, now, zone) * Math.ceil(missUsers.length / 50);
    const withdrawn: FeishuItem[] = [];
    for (const status of [4, 3]) {
      total += perStatus;
      try {
        withdrawn.push(...flattenItems(await query(missUsers, status), o.kinds));
      } catch (err) {
        // Which of 3 and 4 holds withdrawn records is not settled: a refusal means "none under it".
        if (isFeishuError(err) && err.category === 'permanent') continue;
        throw queryError(err);
      }
    }
    const wById = new Map(withdrawn.map((i) => [i.approvalId, i]));
    const wByIdem = new Map(withdrawn.filter((i) => i.idempotentId).map((i) => [i.idempotentId!, i]));
    for (const { kind, create } of candidatesMissing) {
      const w = (create.approvalId ? wById.get(create.approvalId) : undefined) ?? (create.idempotencyKey ? wByIdem.get(create.idempotencyKey) : undefined);
      const item = sentItem(kind, create.payload);
      drifts.push({
        type: w ? 'revoked-in-feishu' : 'missing-in-feishu',
        kind,
        sourceKey: create.sourceKey,
        userId: create.userId ?? '',
        approvalId: create.approvalId,
        idempotentId: create.idempotencyKey,
        startTime: str(item.start_time),
        endTime: str(item.end_time),
        detail: w ? 'withdrawn in Feishu while the source still approves it' : 'sent, but Feishu holds no such approval',
        repair: 'none',
      });
    }
  }

  // 6. Approved in Feishu, but not what the sync table wants there.
  const rest = active.filter((i) => !matched.has(i.approvalId));
  const ours = rest.filter((i) => isOurs(i.idempotentId, namespace));
  const known = new Map<string, OutboxOperation>();
  for (const rows of byKind.values()) for (const ops of rows.ops.values()) for (const op of ops) if (op.idempotencyKey) known.set(op.idempotencyKey, op);
  const unknownKeys = ours.map((i) => i.idempotentId!).filter((k) => !known.has(k));
  for (const [k, op] of await syncRowsByIdempotencyKey(deps.state, deps.t, unknownKeys)) known.set(k, op);
  const outside = new Map<string, KeyRows>();
  for (const item of rest) {
    if (!isOurs(item.idempotentId, namespace)) {
      drifts.push({ ...driftOf('foreign', item.kind, null, item.userId, item, item.idempotentId ? `idempotent_id ${item.idempotentId} is not of namespace ${namespace}` : 'no idempotent_id: created by hand or by another system'), repair: 'never' });
      continue;
    }
    const create = known.get(item.idempotentId!);
    if (!create) {
      drifts.push(driftOf('active-in-feishu', item.kind, null, item.userId, item, 'unknown to the sync table'));
      continue;
    }
    // A key outside the window: its rows are loaded now, to judge whether this create is current.
    let rows = byKind.get(create.kind);
    if (!rows || !rows.ops.has(create.sourceKey)) {
      const id = `${create.kind}\u0000${create.sourceKey}`;
      if (!outside.has(id)) outside.set(id, await loadKeyRows(deps.state, deps.t, create.kind, null, null, [create.sourceKey]));
      rows = outside.get(id)!;
    }
    const ops = rows.ops.get(create.sourceKey) ?? [];
    if (isBusy(ops)) continue;
    const current = currentCreate(rows.records.get(create.sourceKey), ops);
    if (current?.id === create.id) {
      const diff = differences(sentItem(create.kind, create.payload), zone, item);
      if (diff.length > 0) drifts.push(driftOf('differs', create.kind, create.sourceKey, item.userId, item, diff.join('; ')));
      continue;
    }
    const rec = rows.records.get(create.sourceKey);
    const why = !rec || rec.state === 'inactive' ? 'the record is cancelled' : create.status === OP_STATUS.REVOKED ? 'revoked by the sync, but still approved in Feishu' : 'the record changed: another version is current';
    drifts.push(driftOf('active-in-feishu', create.kind, create.sourceKey, item.userId, item, why));
  }

  // 7. Repair through the outbox, then send.
  let send: SendCounts | null = null;
  const repairable = drifts.filter((d) => d.type !== 'foreign');
  if (o.repair && repairable.length > 0) {
    await writeRepairs(deps, repairable, active, known, now);
    for (const d of repairable) d.repair = 'queued';
    send = await sender(deps).drain(o.signal);
    await settleRepairs(deps, repairable);
  }
  const driftLeft = repairable.filter((d) => d.repair !== 'repaired').length;
  for (const d of drifts) deps.metrics?.drift.inc({ kind: d.kind, type: d.type });
  return { from: o.from, to: o.to, queriedTo, kinds: o.kinds, users: userList.length, checked, busy, calls, durationMs: Date.now() - started, drifts, driftLeft, send };
}

function dateWindowsCount(from: string, to: string, now: number, zone: string): number {
  return to < from ? 0 : dateWindows(ymdOf(from), ymdOf(to), now, zone, 'PeriodTime').length;
}


function driftOf(type: DriftType, kind: Kind, sourceKey: string | null, userId: string, item: FeishuItem, detail: string): Drift {
  return { type, kind, sourceKey, userId, approvalId: item.approvalId, idempotentId: item.idempotentId, startTime: str(item.item.start_time), endTime: str(item.item.end_time), detail, repair: 'none' };
}

async function queryOrExplain<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw queryError(err);
  }
}

function queryError(err: unknown): unknown {
  if (!(err instanceof FeishuError)) return err;
  const what = err.category === 'quota' ? 'the monthly API quota is used up' : err.category === 'auth' ? 'Feishu refused the credentials or the permission' : `the query failed (${err.code})`;
  return new AppError('RECONCILE_QUERY', `reconcile stopped: ${what}: ${err.message}`, { cause: err });
}

/** Operations still in the outbox on a key (to be sent, or stopped until `retry`): the key is not judged now. */
function isBusy(ops: readonly OutboxOperation[]): boolean {
  return ops.some((op) => op.status === OP_STATUS.PENDING || op.status === OP_STATUS.SENDING || op.status === OP_STATUS.FAILED || op.status === OP_STATUS.DEAD);
}


/** The window `run` reconciles: the last `days` days up to today (feishu.time_zone). */
export function recentWindow(days: number, zone: string, now = Date.now()): { from: string; to: string } {
  const today = DateTime.fromMillis(now, { zone }).startOf('day');
  return { from: today.minus({ days: Math.max(0, days - 1) }).toISODate()!, to: today.toISODate()! };
}

