import type { Knex } from 'knex';
import { lookupSubject, lookupsOf } from '../state/lookups.js';
import { isKind, type Kind } from '../kinds.js';
import type { StateTables } from '../state/tables.js';
import { fromJson, toInt, toMillis } from '../state/values.js';
import { sanitizeErrorText } from '../log/redact.js';
import { laterVersionSent } from '../state/outbox.js';

/*
 * The console's reads of the state database. Every list is a keyset page (id below the
 * cursor, newest first) over an index, so a page costs the same on a sync table of a million
 * operations as on an empty one.
 */

export const PROBLEM_STATUSES = Object.freeze(['failed', 'dead', 'invalid'] as const);
export type ProblemStatus = (typeof PROBLEM_STATUSES)[number];

export const MAX_PAGE = 200;
export const DEFAULT_PAGE = 50;

export interface ProblemFilter {
  statuses: readonly ProblemStatus[];
  kind?: Kind | undefined;
  /** A Feishu body code (digits) or one of our error codes (FEISHU_…). */
  code?: string | undefined;
  /** An employee (user_id) or a source key, exact. */
  q?: string | undefined;
  limit: number;
  /** Only operations with an id below this one (the previous page's `next`). */
  before?: number | undefined;
}

export interface Operation {
  id: number;
  kind: Kind;
  sourceKey: string;
  version: string;
  generation: number;
  operation: string;
  status: string;
  attempts: number;
  idempotentId: string | null;
  approvalId: string | null;
  feishuCode: number | null;
  feishuMsg: string | null;
  errorCode: string | null;
  reasons: string[] | null;
  userId: string | null;
  effectiveDate: string | null;
  start: string | null;
  end: string | null;
  payload: unknown;
  revokesId: number | null;
  createdAt: number;
  updatedAt: number;
  sentAt: number | null;
  nextAttemptAt: number;
}

type Row = Record<string, unknown>;

/** The first start_time / end_time found in a mapped payload (any kind's item list). */
function spanOf(payload: unknown): { start: string | null; end: string | null } {
  const seen: unknown[] = [payload];
  for (let i = 0; i < seen.length && i < 50; i++) {
    const v = seen[i];
    if (v === null || typeof v !== 'object') continue;
    const o = v as Record<string, unknown>;
    if (typeof o.start_time === 'string' && typeof o.end_time === 'string') return { start: o.start_time, end: o.end_time };
    seen.push(...Object.values(o));
  }
  return { start: null, end: null };
}

export function operationOf(r: Row, withPayload: boolean): Operation {
  const payload = fromJson<unknown>(r.payload as string | null);
  return {
    id: Number(r.id),
    kind: r.kind as Kind,
    sourceKey: String(r.source_key),
    version: String(r.version),
    generation: toInt(r.generation as number),
    operation: String(r.operation),
    status: String(r.status),
    attempts: toInt(r.attempts as number),
    idempotentId: (r.idempotency_key as string | null) ?? null,
    approvalId: (r.approval_id as string | null) ?? null,
    feishuCode: r.feishu_code === null || r.feishu_code === undefined ? null : Number(r.feishu_code),
    feishuMsg: typeof r.feishu_msg === 'string' ? sanitizeErrorText(r.feishu_msg) : null,
    errorCode: (r.error_code as string | null) ?? null,
    reasons: fromJson<string[]>(r.reasons as string | null),
    userId: (r.user_id as string | null) ?? null,
    effectiveDate: (r.effective_date as string | null) ?? null,
    ...spanOf(payload),
    payload: withPayload ? payload : undefined,
    revokesId: toMillis(r.revokes_id as number | null),
    createdAt: toMillis(r.created_at as number) ?? 0,
    updatedAt: toMillis(r.updated_at as number) ?? 0,
    sentAt: toMillis(r.sent_at as number | null),
    nextAttemptAt: toMillis(r.next_attempt_at as number) ?? 0,
  };
}

/**
 * Failed, dead and invalid operations, newest first (by id), one keyset page. Without an
 * employee filter each status is its own range of the (status, id) index and the pages are
 * merged; with one, the (user_id, id) and (source_key, id) indexes find the few rows. A create
 * that failed for a version since replaced by a sent one is history, not a problem (as in
 * `status`), and is left out.
 */
export async function listProblems(db: Knex, t: StateTables, f: ProblemFilter): Promise<{ items: Operation[]; next: number | null }> {
  const limit = Math.max(1, Math.min(MAX_PAGE, f.limit));
  const base = (statuses: readonly string[]) => {
    let q = db(`${t.syncRecords} as s`).select('s.*');
    q = statuses.length === 1 ? q.where('s.status', statuses[0]!) : q.whereIn('s.status', statuses as string[]);
    if (f.before !== undefined) q = q.andWhere('s.id', '<', f.before);
    if (f.kind) q = q.andWhere('s.kind', f.kind);
    if (f.code) q = /^\d+$/.test(f.code) ? q.andWhere('s.feishu_code', Number(f.code)) : q.andWhere('s.error_code', f.code);
    if (f.q) q = q.andWhere((w) => w.where('s.user_id', f.q!).orWhere('s.source_key', f.q!));
    return q
      .whereNot((w) => w.where('s.operation', 'create').whereIn('s.status', ['failed', 'dead']).whereExists(laterVersionSent(db, t)))
      .orderBy('s.id', 'desc')
      .limit(limit + 1) as Promise<Row[]>;
  };
  const statuses = f.statuses.length > 0 ? f.statuses : PROBLEM_STATUSES;
  const rows = f.q ? await base(statuses) : (await Promise.all(statuses.map((s) => base([s])))).flat();
  rows.sort((a, b) => Number(b.id) - Number(a.id));
  const page = rows.slice(0, limit).map((r) => operationOf(r, false));
  return { items: page, next: rows.length > limit ? page.at(-1)!.id : null };
}

export interface RecordStory {
  kind: Kind;
  sourceKey: string;
  /** The records table's row: what the source row last looked like. */
  current: {
    state: string;
    version: string | null;
    userId: string | null;
    effectiveDate: string | null;
    reasons: string[] | null;
    generation: number;
    firstSeenAt: number;
    updatedAt: number;
  } | null;
  /** Each version seen, oldest first, with the payload it mapped to and its operations. */
  versions: Array<{ version: string; firstSeenAt: number; payload: unknown; reasons: string[] | null; operations: Operation[] }>;
  /**
   * The latest operation whose outcome was decided by looking the record up in Feishu (by
   * idempotent_id: a duplicate or ambiguous answer), with what it found. null when none was.
   */
  lookup: {
    operationId: number;
    at: number;
    errorCode: string | null;
    approvalId: string | null;
    message: string | null;
    /** What Feishu showed when the item was last searched for (stored lookups, migration 0017); null when unknown. */
    searched?: { by: 'idempotent_id' | 'approval_id'; statuses: number[]; found: boolean; status: number | null };
  } | null;
  /** Operations beyond the cap were left out (a record edited very often). */
  truncated: boolean;
}

const STORY_CAP = 500;

/** One source key's story, from the (kind, source_key, id) index. */
export async function recordStory(db: Knex, t: StateTables, kind: Kind, sourceKey: string): Promise<RecordStory | null> {
  const [rec, rows] = await Promise.all([
    db(t.records).where({ kind, source_key: sourceKey }).first() as Promise<Row | undefined>,
    db(t.syncRecords).where({ kind, source_key: sourceKey }).orderBy('id').limit(STORY_CAP + 1) as Promise<Row[]>,
  ]);
  if (!rec && rows.length === 0) return null;
  const ops = rows.slice(0, STORY_CAP).map((r) => operationOf(r, true));
  const versions = new Map<string, RecordStory['versions'][number]>();
  for (const op of ops) {
    let v = versions.get(op.version);
    if (!v) versions.set(op.version, (v = { version: op.version, firstSeenAt: op.createdAt, payload: null, reasons: null, operations: [] }));
    if (op.operation === 'create' && op.payload !== null && op.payload !== undefined) v.payload = op.payload;
    if (op.reasons) v.reasons = op.reasons;
    v.operations.push({ ...op, payload: undefined });
  }
  const LOOKED_UP = new Set(['FEISHU_DUPLICATE', 'FEISHU_AMBIGUOUS']);
  const looked = [...ops].reverse().find((o) => o.errorCode !== null && LOOKED_UP.has(o.errorCode));
  // The latest stored lookup of any of the record's items, by idempotent_id or approval_id.
  const subjects = new Map<string, (typeof ops)[number]>();
  for (const o of ops) {
    if (o.idempotentId) subjects.set(lookupSubject({ idempotentId: o.idempotentId, approvalId: null }), o);
    if (o.approvalId) subjects.set(lookupSubject({ idempotentId: null, approvalId: o.approvalId }), o);
  }
  const stored = (await lookupsOf(db, t, [...subjects.keys()])).sort((a, b) => b.at - a.at)[0];
  const storedOp = stored ? subjects.get(stored.subject) : undefined;
  return {
    kind,
    sourceKey,
    current: rec
      ? {
          state: String(rec.state),
          version: (rec.version as string | null) ?? null,
          userId: (rec.user_id as string | null) ?? null,
          effectiveDate: (rec.effective_date as string | null) ?? null,
          reasons: fromJson<string[]>(rec.reasons as string | null),
          generation: toInt(rec.generation as number),
          firstSeenAt: toMillis(rec.first_seen_at as number) ?? 0,
          updatedAt: toMillis(rec.updated_at as number) ?? 0,
        }
      : null,
    versions: [...versions.values()],
    lookup:
      stored && storedOp
        ? {
            operationId: storedOp.id,
            at: stored.at,
            errorCode: storedOp.errorCode,
            approvalId: stored.foundApprovalId ?? storedOp.approvalId,
            message: storedOp.feishuMsg,
            searched: { by: stored.by, statuses: stored.statuses, found: stored.foundApprovalId !== null, status: stored.foundStatus },
          }
        : looked
          ? { operationId: looked.id, at: looked.updatedAt, errorCode: looked.errorCode, approvalId: looked.approvalId, message: looked.feishuMsg }
          : null,
    truncated: rows.length > STORY_CAP,
  };
}

export interface CyclePoint {
  id: number;
  startedAt: number;
  durationMs: number | null;
  outcome: string;
  read: number;
  sent: number;
}

/** Cycles started since `since` (the runs table's started_at index), oldest first, at most 1,500 (a cycle a minute). */
export async function cyclesSince(db: Knex, t: StateTables, since: number): Promise<CyclePoint[]> {
  const rows = (await db(t.runs).where('started_at', '>=', since).andWhere({ type: 'cycle' }).orderBy('started_at', 'desc').limit(1500)) as Row[];
  return rows.reverse().map((r) => {
    const counts = fromJson<Record<string, unknown>>(r.counts as string | null) ?? {};
    const started = toMillis(r.started_at as number) ?? 0;
    const finished = toMillis(r.finished_at as number | null);
    return {
      id: Number(r.id),
      startedAt: started,
      durationMs: finished === null ? null : finished - started,
      outcome: String(r.outcome),
      read: Number(counts.read ?? 0),
      sent: Number(counts.sent ?? 0),
    };
  });
}

/** Parse `kind` from a request, or undefined; throws on an unknown kind. */
export function kindParam(v: string | null): Kind | undefined {
  if (v === null || v === '') return undefined;
  if (!isKind(v)) throw new RangeError(`kind: unknown kind "${v}"`);
  return v;
}

/**
 * The cycles of a window in at most `buckets` equal slots (the chart's bars): records read
 * summed, the longest duration, and failed when any cycle of the slot failed.
 */
export function bucketCycles(points: readonly CyclePoint[], from: number, to: number, buckets = 96): CyclePoint[] {
  const width = (to - from) / buckets;
  const out: CyclePoint[] = [];
  for (const p of points) {
    const slot = Math.min(buckets - 1, Math.max(0, Math.floor((p.startedAt - from) / width)));
    const at = from + slot * width;
    let b = out.at(-1);
    if (!b || b.startedAt !== at) out.push((b = { id: p.id, startedAt: at, durationMs: 0, outcome: 'ok', read: 0, sent: 0 }));
    b.read += p.read;
    b.sent += p.sent;
    b.durationMs = Math.max(b.durationMs ?? 0, p.durationMs ?? 0);
    if (p.outcome === 'failed' || p.outcome === 'crashed') b.outcome = p.outcome;
  }
  return out;
}
