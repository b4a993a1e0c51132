import type { Kind } from '../../kinds.js';
import { CODE_CATEGORY, type FeishuCategory } from '../../feishu/errors.js';
import { fromJson, toInt, toMillis } from '../values.js';

/*
 * An operation: one row of the outbox (the sync table), a create or a revoke of one version
 * of one record, with its sending state. A *record* is one source row's state (records.ts).
 */

export const OP_STATUS = Object.freeze({
  PENDING: 'pending',
  SENDING: 'sending',
  SENT: 'sent',
  FAILED: 'failed',
  DEAD: 'dead',
  INVALID: 'invalid',
  REVOKED: 'revoked',
  SUPERSEDED: 'superseded',
} as const);
export type OpStatus = (typeof OP_STATUS)[keyof typeof OP_STATUS];

export const OPERATION_TYPES = Object.freeze({ CREATE: 'create', REVOKE: 'revoke' } as const);
export type OperationType = (typeof OPERATION_TYPES)[keyof typeof OPERATION_TYPES];

/** Statuses of an operation that is still to run: later operations on the same key wait for it. */
export const IN_FLIGHT: readonly OpStatus[] = [OP_STATUS.PENDING, OP_STATUS.SENDING];
/** Statuses of an operation that gave up until an operator acts (`retry`). */
export const STOPPED: readonly OpStatus[] = [OP_STATUS.FAILED, OP_STATUS.DEAD];

export interface OutboxOperation {
  readonly id: number;
  readonly kind: Kind;
  readonly sourceKey: string;
  readonly version: string;
  readonly generation: number;
  readonly operation: OperationType;
  readonly idempotencyKey: string | null;
  readonly status: OpStatus;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly leaseOwner: string | null;
  readonly leaseUntil: number | null;
  readonly revokesId: number | null;
  readonly approvalId: string | null;
  readonly feishuCode: number | null;
  readonly feishuMsg: string | null;
  readonly errorCode: string | null;
  readonly reasons: string[] | null;
  readonly payload: unknown;
  readonly userId: string | null;
  readonly effectiveDate: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly sentAt: number | null;
}

export interface NewOperation {
  readonly kind: Kind;
  readonly sourceKey: string;
  readonly version: string;
  readonly generation: number;
  readonly operation: OperationType;
  readonly idempotencyKey?: string | null;
  readonly status?: OpStatus;
  readonly revokesId?: number | null;
  readonly reasons?: string[] | null;
  readonly payload?: unknown;
  readonly userId?: string | null;
  readonly effectiveDate?: string | null;
}

export type Row = Record<string, unknown>;

export function fromRow(r: Row): OutboxOperation {
  return {
    id: Number(r.id),
    kind: r.kind as Kind,
    sourceKey: String(r.source_key),
    version: String(r.version),
    generation: toInt(r.generation as number),
    operation: r.operation as OperationType,
    idempotencyKey: (r.idempotency_key as string | null) ?? null,
    status: r.status as OpStatus,
    attempts: toInt(r.attempts as number),
    nextAttemptAt: toMillis(r.next_attempt_at as number) ?? 0,
    leaseOwner: (r.lease_owner as string | null) ?? null,
    leaseUntil: toMillis(r.lease_until as number | null),
    revokesId: toMillis(r.revokes_id as number | null),
    approvalId: (r.approval_id as string | null) ?? null,
    feishuCode: r.feishu_code === null || r.feishu_code === undefined ? null : Number(r.feishu_code),
    feishuMsg: (r.feishu_msg as string | null) ?? null,
    errorCode: (r.error_code as string | null) ?? null,
    reasons: fromJson<string[]>(r.reasons as string | null),
    payload: fromJson<unknown>(r.payload as string | null),
    userId: (r.user_id as string | null) ?? null,
    effectiveDate: (r.effective_date as string | null) ?? null,
    createdAt: toMillis(r.created_at as number) ?? 0,
    updatedAt: toMillis(r.updated_at as number) ?? 0,
    sentAt: toMillis(r.sent_at as number | null),
  };
}

/** Answers that refused a call before anything was stored: a create that got only these is not in Feishu. */
const REFUSED: ReadonlySet<FeishuCategory> = new Set<FeishuCategory>(['permanent', 'rate_limited', 'auth', 'quota']);

/**
 * Whether Feishu may hold this create. Only a create never attempted, or refused outright on
 * its only attempt, is certainly absent; one that was confirmed, or that had an attempt end
 * without a definite answer (a lost reply, a timeout, attempts used up, a duplicate key, a
 * shutdown mid-call), may exist, also after `retry` or `backfill --resend` queued it again with
 * its attempts reset (the error code, approval_id and sent_at stay).
 */
export function mayExistInFeishu(c: OutboxOperation): boolean {
  if (c.operation !== OPERATION_TYPES.CREATE) return false;
  if (c.approvalId !== null || c.sentAt !== null) return true;
  if (c.errorCode !== null) {
    // Not a Feishu code (ABORTED, SEND_ERROR): the call may have been under way.
    const category = CODE_CATEGORY[c.errorCode as keyof typeof CODE_CATEGORY] as FeishuCategory | undefined;
    if (category === undefined || !REFUSED.has(category)) return true;
  }
  switch (c.status) {
    case OP_STATUS.SENT:
    case OP_STATUS.SENDING:
    case OP_STATUS.DEAD:
      return true;
    case OP_STATUS.FAILED:
      return c.attempts > 1; // attempts before the refusal may have been stored
    case OP_STATUS.PENDING:
      return c.attempts > 0;
    default:
      return false;
  }
}

/** The revoke that undoes `create` (looked up by its idempotent_id first when no approval_id is known). */
export function revokeOf(create: OutboxOperation): NewOperation {
  return {
    kind: create.kind,
    sourceKey: create.sourceKey,
    version: create.version,
    generation: create.generation,
    operation: OPERATION_TYPES.REVOKE,
    revokesId: create.id,
    userId: create.userId,
    effectiveDate: create.effectiveDate,
  };
}
