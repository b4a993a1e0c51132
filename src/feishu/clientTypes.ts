import type { Kind } from '../kinds.js';
import type { Logger } from '../log/logger.js';
import type { FeishuEndpoint, FeishuError, RawResponse } from './errors.js';
import type { Clock } from './http.js';
import type { RateLimiter } from './limiter.js';
import type { TransientDecision } from './retry.js';
import type { EmployeeType, QueryUserApprovalsBody } from './schema.js';
import type { TokenProvider } from './token.js';

/* The client's paths, inputs, results and options (client.ts holds the calls). */

export const CREATE_PATH = '/open-apis/attendance/v1/user_approvals';
export const QUERY_PATH = '/open-apis/attendance/v1/user_approvals/query';
export const PROCESS_PATH = '/open-apis/attendance/v1/approval_infos/process';

export type { EmployeeType };

/** The fields of an approval item the client itself reads; the rest passes through untouched. */
export interface ItemFields {
  idempotent_id?: string | undefined;
  approval_id?: string | undefined;
  start_time?: string | undefined;
  end_time?: string | undefined;
}

/**
 * A `user_approval` with exactly one item in one of its four arrays (§7.6). Structural, so
 * that schema.ts's validated `UserApproval` and stored payloads both fit.
 */
export interface UserApprovalInput {
  user_id: string;
  date: string;
  leaves?: readonly ItemFields[] | undefined;
  outs?: readonly ItemFields[] | undefined;
  overtime_works?: readonly ItemFields[] | undefined;
  trips?: readonly ItemFields[] | undefined;
}

export type QueryUserApprovalsInput = QueryUserApprovalsBody;

export interface QueriedUserApproval {
  user_id: string;
  date: string;
  leaves?: ItemFields[];
  outs?: ItemFields[];
  overtime_works?: ItemFields[];
  trips?: ItemFields[];
  time_zone?: string;
  [key: string]: unknown;
}

export interface QueryUserApprovalsResult {
  user_approvals: QueriedUserApproval[];
}

export interface CreateResult {
  approvalId: string;
  idempotentId: string;
  /** The create's reply was lost or refused as a duplicate, and the record was found by query. */
  reconciled: boolean;
}

export interface RevokeResult {
  approvalId: string;
  status: number;
  /** The process call failed but a query showed the item already withdrawn (status 4 or 3). */
  alreadyRevoked: boolean;
}

export interface FoundApproval {
  approvalId: string;
  status: number;
}

export interface FindArgs {
  employeeType: EmployeeType;
  userId: string;
  /** `date` of the user_approval, yyyyMMdd. */
  date: string;
  kind: Kind;
  idempotentId: string;
  /** Search by this approval_id instead of the idempotent_id (a revoke's lookup). */
  approvalId?: string | undefined;
  /** Item start/end (wall clock); widen the period window when `date` differs from them. */
  startTime?: string | undefined;
  endTime?: string | undefined;
  /** Earliest possible creation time (epoch ms) for the CreateTime search; default 29 days ago. */
  createdFrom?: number | undefined;
  /** Statuses to search, in order. Default [2, 4, 3]: approved, then withdrawn under either label. */
  statuses?: readonly number[] | undefined;
}

export interface RevokeLookup {
  employeeType: EmployeeType;
  userId: string;
  date: string;
  startTime?: string | undefined;
  endTime?: string | undefined;
  /** Earliest creation time of the approval (its create's first attempt), for the CreateTime search. */
  createdFrom?: number | undefined;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
}

export interface CreateOptions extends CallOptions {
  /**
   * When this create was first attempted (epoch ms; default now). A lookup after an ambiguous
   * outcome searches creation dates from then: an earlier attempt, days ago, may have stored it.
   */
  firstAttemptAt?: number | undefined;
}

export interface FeishuClientOptions {
  baseUrl: string;
  appId: string;
  appSecret: string;
  /** Calls per second for a limiter of this client's own (default 50). Ignored when `limiter` is given. */
  rateLimit?: number;
  /** A limiter shared with other clients of the same app. */
  limiter?: RateLimiter;
  /** A token provider shared with other clients of the same app. */
  tokenProvider?: TokenProvider;
  /** Per-request timeout (got `timeout.request`), default 10 s. */
  timeoutMs?: number;
  /** In-call attempts for transient errors, default 4. */
  maxAttempts?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Bound on the time one call spends waiting out 429s, default 60 s. */
  maxRateLimitWaitMs?: number;
  /** Attendance-group zone, for the query's today + 1 cap. Default Asia/Shanghai. */
  timeZone?: string;
  logger?: Logger;
  clock?: Clock;
  random?: () => number;
  /** Called once per business call Feishu answered with code 0: what its monthly quota counts. */
  onSuccess?: (endpoint: FeishuEndpoint) => void;
  /** Called after each lookup that ran to the end (found or not): the console shows the latest. */
  onLookup?: (lookup: LookupRecord) => void;
}

/** One lookup of an item in Feishu and what it found. */
export interface LookupRecord {
  kind: Kind;
  userId: string;
  /** The idempotent_id searched for; null when the item was searched by approval_id. */
  idempotentId: string | null;
  /** The approval_id searched for (a revoke's lookup); null for a search by idempotent_id. */
  approvalId: string | null;
  statuses: readonly number[];
  found: FoundApproval | null;
  at: number;
}

export interface FeishuClientStats {
  /** Public calls made (create, query, process). */
  calls: number;
  /** HTTP requests sent to business endpoints (attempts, lookups included). */
  requests: number;
  /** Retries after transient errors. */
  retries: number;
  /** Throttled replies (429 / 99991400). */
  rateLimited: number;
  /** Retries after a token-invalid reply. */
  tokenRefreshes: number;
  /** Ambiguous creates resolved by finding the record. */
  reconciliations: number;
  /** Lookups by idempotent_id or approval_id. */
  lookups: number;
  /** Calls that ended in an error. */
  failures: number;
  tokenFetches: number;
  limiterWaitMs: number;
}

export interface RequestSpec<T> {
  endpoint: FeishuEndpoint;
  path: string;
  searchParams?: Record<string, string>;
  body: unknown;
  isWrite: boolean;
  parse: (res: RawResponse) => T;
  signal?: AbortSignal | undefined;
  onTransient?: (error: FeishuError, attempt: number, final: boolean) => Promise<TransientDecision<T>>;
}

