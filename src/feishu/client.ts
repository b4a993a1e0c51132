import { KIND_APPROVAL_TYPE, KIND_ARRAY, type Kind } from '../kinds.js';
import type { Logger } from '../log/logger.js';
import { registerSecret } from '../log/redact.js';
import { classifyResponse, FeishuError, FeishuErrorCode, type FeishuEndpoint } from './errors.js';
import { FeishuHttp, systemClock, type Clock } from './http.js';
import { RateLimiter } from './limiter.js';
import { chunkUserIds, dateWindows, lookupWindows } from './lookup.js';
import { retryLoop, RetryPolicy, type RetryEvent } from './retry.js';
import type { EmployeeType } from './schema.js';
import { TokenProvider } from './token.js';
import {
  CREATE_PATH,
  PROCESS_PATH,
  QUERY_PATH,
  type CallOptions,
  type CreateOptions,
  type CreateResult,
  type FeishuClientOptions,
  type FeishuClientStats,
  type FindArgs,
  type FoundApproval,
  type ItemFields,
  type LookupRecord,
  type QueriedUserApproval,
  type QueryUserApprovalsInput,
  type QueryUserApprovalsResult,
  type RequestSpec,
  type RevokeLookup,
  type RevokeResult,
  type UserApprovalInput,
} from './clientTypes.js';
import { ambiguous, parseCreatedId, parseProcessStatus, parseQuery, singleItem } from './responses.js';

export * from './clientTypes.js';

/**
 * Calls the limiter releases together while the sender's workers queue for it: the server
 * counts calls per second (feishu-api.md §3), so 5 calls every 100 ms are 50 a second as
 * much as 1 every 20 ms, and one wake-up per group roughly halves the CPU of a call.
 */
const FEISHU_BURST = 5;

/**
 * The Feishu Attendance client: create, query and process (revoke) user approvals.
 *
 * Every HTTP attempt takes a slot of the shared limiter, then a token. Retries happen here,
 * never in got: transient errors with full-jitter backoff (`maxAttempts`), 429s after the
 * reset header without using up attempts, token-invalid replies once after a refresh.
 * An ambiguous create (timeout, dropped connection, 5xx, "the object already exists") is
 * resolved by looking the record up by idempotent_id (feishu-api.md §7.5).
 */
export class FeishuClient {
  readonly limiter: RateLimiter;
  readonly tokens: TokenProvider;
  private readonly http: FeishuHttp;
  private readonly policy: RetryPolicy;
  private readonly logger: Logger | undefined;
  private readonly clock: Clock;
  private readonly timeZone: string;
  private readonly onSuccess: ((endpoint: FeishuEndpoint) => void) | undefined;
  private readonly onLookup: ((lookup: LookupRecord) => void) | undefined;
  private readonly counters = { calls: 0, requests: 0, retries: 0, rateLimited: 0, tokenRefreshes: 0, reconciliations: 0, lookups: 0, failures: 0 };

  constructor(opts: FeishuClientOptions) {
    registerSecret(opts.appSecret);
    this.http = new FeishuHttp({ baseUrl: opts.baseUrl, timeoutMs: opts.timeoutMs ?? 10_000 });
    this.limiter = opts.limiter ?? new RateLimiter({ ratePerSecond: opts.rateLimit ?? 50, burst: FEISHU_BURST });
    this.policy = new RetryPolicy({
      ...(opts.maxAttempts !== undefined ? { maxAttempts: opts.maxAttempts } : {}),
      ...(opts.backoffBaseMs !== undefined ? { baseMs: opts.backoffBaseMs } : {}),
      ...(opts.backoffCapMs !== undefined ? { capMs: opts.backoffCapMs } : {}),
      ...(opts.maxRateLimitWaitMs !== undefined ? { maxRateLimitWaitMs: opts.maxRateLimitWaitMs } : {}),
      ...(opts.random !== undefined ? { random: opts.random } : {}),
    });
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.timeZone = opts.timeZone ?? 'Asia/Shanghai';
    this.onSuccess = opts.onSuccess;
    this.onLookup = opts.onLookup;
    this.tokens =
      opts.tokenProvider ??
      new TokenProvider({
        appId: opts.appId,
        appSecret: opts.appSecret,
        http: this.http,
        limiter: this.limiter,
        clock: this.clock,
        retry: this.policy,
        ...(opts.logger ? { logger: opts.logger } : {}),
      });
  }

  stats(): FeishuClientStats {
    return { ...this.counters, tokenFetches: this.tokens.stats().fetches, limiterWaitMs: Math.round(this.limiter.waitedMs) };
  }

  /**
   * Create one approval item. `userApproval` must hold exactly one item, with an idempotent_id.
   * Returns the item's approval_id; `reconciled` when it was found by query after an ambiguous
   * outcome. Throws FeishuError otherwise (see its `category`).
   */
  async createUserApproval(employeeType: EmployeeType, userApproval: UserApprovalInput, opts: CreateOptions = {}): Promise<CreateResult> {
    const { kind, item } = singleItem(userApproval);
    const idempotentId = item.idempotent_id;
    if (!idempotentId) throw new TypeError('createUserApproval: the item needs an idempotent_id (feishu-api.md §7.5)');
    const signal = opts.signal;
    const lookupArgs: FindArgs = {
      employeeType,
      userId: userApproval.user_id,
      date: userApproval.date,
      kind,
      idempotentId,
      startTime: item.start_time,
      endTime: item.end_time,
      // A record stored by any attempt of this create was created at its first attempt or later.
      createdFrom: Math.min(opts.firstAttemptAt ?? Infinity, this.clock.now()),
    };
    this.counters.calls += 1;
    try {
      return await this.request<CreateResult>({
        endpoint: 'create',
        path: CREATE_PATH,
        searchParams: { employee_type: employeeType },
        body: { user_approval: userApproval },
        isWrite: true,
        signal,
        parse: (res) => ({ approvalId: parseCreatedId(res, kind, idempotentId), idempotentId, reconciled: false }),
        onTransient: async (error, _attempt, final) => {
          // Refused before it was stored (connection refused, "no row affected"): just retry.
          if (!error.mayHaveApplied) return undefined;
          let found: FoundApproval | null;
          try {
            found = await this.findItem({ ...lookupArgs, statuses: [2] }, (i) => i.idempotent_id === idempotentId, false, signal);
          } catch (lookupErr) {
            if (!(lookupErr instanceof FeishuError) || lookupErr.category === 'auth' || lookupErr.category === 'quota') return { fail: lookupErr };
            // The lookup failed too. Retrying the create with the same idempotent_id stays safe;
            // after the last attempt the outcome is unknown, and the caller must keep the key.
            if (!final) return undefined;
            return { fail: ambiguous(error, `create failed and the lookup failed too (${lookupErr.code})`) };
          }
          if (!found) return undefined;
          this.counters.reconciliations += 1;
          this.logger?.info('feishu create reconciled by idempotent_id', { idempotentId, approvalId: found.approvalId, after: error.code, logId: error.logId });
          return { done: { approvalId: found.approvalId, idempotentId, reconciled: true } };
        },
      });
    } catch (err) {
      if (err instanceof FeishuError && err.code === FeishuErrorCode.DUPLICATE) {
        return this.resolveDuplicate(err, lookupArgs, signal);
      }
      throw this.failed('create', err, { idempotentId });
    }
  }

  /**
   * "the object already exists": our idempotent_id is taken. Find the record: approved → it is
   * ours (an earlier attempt was stored); withdrawn → a duplicate that cannot become live; not
   * found → still ambiguous: Feishu says it holds the key, so the record exists somewhere the
   * lookup did not reach (yet). The operation is retried later, never failed on that ground.
   */
  private async resolveDuplicate(err: FeishuError, args: FindArgs, signal: AbortSignal | undefined): Promise<CreateResult> {
    let found: FoundApproval | null;
    try {
      // Withdrawn leaves and overtime may show under 3 instead of 4 (feishu-api.md §1.4).
      found = await this.findItem({ ...args, statuses: [2, 4, 3] }, (i) => i.idempotent_id === args.idempotentId, true, signal);
    } catch (lookupErr) {
      if (!(lookupErr instanceof FeishuError)) throw lookupErr;
      throw this.failed('create', lookupErr.category === 'auth' || lookupErr.category === 'quota' ? lookupErr : ambiguous(err, `duplicate idempotent_id; lookup failed (${lookupErr.code})`), { idempotentId: args.idempotentId });
    }
    if (found && found.status === 2) {
      this.counters.reconciliations += 1;
      this.logger?.info('feishu create reconciled by idempotent_id', { idempotentId: args.idempotentId, approvalId: found.approvalId, after: err.code, logId: err.logId });
      return { approvalId: found.approvalId, idempotentId: args.idempotentId, reconciled: true };
    }
    if (!found) throw this.failed('create', ambiguous(err, 'duplicate idempotent_id, but no record with it was found (yet)'), { idempotentId: args.idempotentId });
    const dup = new FeishuError(FeishuErrorCode.DUPLICATE, {
      endpoint: 'create',
      httpStatus: err.httpStatus,
      feishuCode: err.feishuCode,
      feishuMsg: err.feishuMsg,
      logId: err.logId,
      approvalId: found.approvalId,
      causeText: `idempotent_id belongs to approval ${found.approvalId} in status ${found.status}`,
    });
    throw this.failed('create', dup, { idempotentId: args.idempotentId });
  }

  async queryUserApprovals(employeeType: EmployeeType, body: QueryUserApprovalsInput, opts: CallOptions = {}): Promise<QueryUserApprovalsResult> {
    this.counters.calls += 1;
    try {
      return await this.query(employeeType, body, opts.signal);
    } catch (err) {
      throw this.failed('query', err, {});
    }
  }

  /**
   * Revoke (process, status 4) one approval. If the call fails and `lookup` is given, the error
   * counts as success only when a query shows the item withdrawn (status 4 or 3): a repeat revoke
   * after a lost reply. Without `lookup` the error is thrown.
   */
  async revokeApproval(approvalId: string, kind: Kind, opts: CallOptions & { lookup?: RevokeLookup } = {}): Promise<RevokeResult> {
    this.counters.calls += 1;
    const signal = opts.signal;
    try {
      const status = await this.request<number>({
        endpoint: 'process',
        path: PROCESS_PATH,
        body: { approval_id: approvalId, approval_type: KIND_APPROVAL_TYPE[kind], status: 4 },
        isWrite: true,
        signal,
        parse: parseProcessStatus,
      });
      return { approvalId, status, alreadyRevoked: false };
    } catch (err) {
      const lookup = opts.lookup;
      if (!(err instanceof FeishuError) || !lookup || err.category === 'auth' || err.category === 'quota' || err.category === 'rate_limited') {
        throw this.failed('process', err, { approvalId });
      }
      let found: FoundApproval | null = null;
      try {
        found = await this.findItem(
          { ...lookup, kind, idempotentId: '', approvalId, statuses: [4, 3] },
          (i) => i.approval_id === approvalId,
          true,
          signal,
        );
      } catch (lookupErr) {
        this.logger?.warn('feishu revoke: lookup after a failed revoke failed', { approvalId, lookupError: lookupErr instanceof FeishuError ? lookupErr.toJSON() : String(lookupErr) });
        // The refusal may only mean an earlier attempt already withdrew it; unknown until a
        // lookup answers, so the operation must be retried, not failed for good.
        const lookupCategory = lookupErr instanceof FeishuError ? lookupErr.category : 'transient';
        if (['transient', 'ambiguous', 'rate_limited'].includes(lookupCategory)) {
          throw this.failed('process', ambiguous(err, 'revoke refused and the lookup failed'), { approvalId });
        }
      }
      if (found) {
        this.logger?.info('feishu revoke: already withdrawn', { approvalId, status: found.status, after: err.code, logId: err.logId });
        return { approvalId, status: found.status, alreadyRevoked: true };
      }
      throw this.failed('process', err, { approvalId });
    }
  }

  /** Find our item by idempotent_id (status 2, then 4, then 3 by default), or null. */
  async findByIdempotentId(args: FindArgs, opts: CallOptions = {}): Promise<FoundApproval | null> {
    this.counters.calls += 1;
    try {
      return await this.findItem(args, (i) => i.idempotent_id === args.idempotentId, true, opts.signal);
    } catch (err) {
      throw this.failed('query', err, { idempotentId: args.idempotentId });
    }
  }

  /**
   * Query many users over a long date range: user_ids in groups of at most 50 and dates in
   * 29-day windows (both undocumented limits, read the strict way), one call per pair.
   */
  async queryMany(
    employeeType: EmployeeType,
    args: { userIds: readonly string[]; from: number; to: number; status?: 0 | 1 | 2 | 3 | 4; type?: 'PeriodTime' | 'CreateTime' },
    opts: CallOptions = {},
  ): Promise<QueryUserApprovalsResult> {
    this.counters.calls += 1;
    const out: QueriedUserApproval[] = [];
    try {
      for (const w of dateWindows(args.from, args.to, this.clock.now(), this.timeZone, args.type ?? 'PeriodTime')) {
        for (const users of chunkUserIds(args.userIds)) {
          const body: QueryUserApprovalsInput = { user_ids: users, check_date_from: w.from, check_date_to: w.to, check_date_type: w.type, ...(args.status !== undefined ? { status: args.status } : {}) };
          out.push(...(await this.query(employeeType, body, opts.signal)).user_approvals);
        }
      }
    } catch (err) {
      throw this.failed('query', err, {});
    }
    return { user_approvals: out };
  }

  // -------------------------------------------------------------------------------------

  private async findItem(args: FindArgs, match: (item: ItemFields) => boolean, includeCreateTime: boolean, signal: AbortSignal | undefined): Promise<FoundApproval | null> {
    this.counters.lookups += 1;
    const statuses = args.statuses ?? [2, 4, 3];
    const found = await this.searchItem(args, statuses, match, includeCreateTime, signal);
    const searched = args.approvalId ? { idempotentId: null, approvalId: args.approvalId } : { idempotentId: args.idempotentId, approvalId: null };
    this.onLookup?.({ kind: args.kind, userId: args.userId, ...searched, statuses, found, at: this.clock.now() });
    return found;
  }

  private async searchItem(args: FindArgs, statuses: readonly number[], match: (item: ItemFields) => boolean, includeCreateTime: boolean, signal: AbortSignal | undefined): Promise<FoundApproval | null> {
    const { date, startTime, endTime, createdFrom } = args;
    const windows = lookupWindows({ date, startTime, endTime, createdFrom, nowMs: this.clock.now(), timeZone: this.timeZone, includeCreateTime });
    const array = KIND_ARRAY[args.kind];
    for (const status of statuses) {
      for (const w of windows) {
        let result: QueryUserApprovalsResult;
        try {
          result = await this.query(
            args.employeeType,
            { user_ids: [args.userId], check_date_from: w.from, check_date_to: w.to, check_date_type: w.type, status: status as 0 | 1 | 2 | 3 | 4 },
            signal,
          );
        } catch (err) {
          // Which of 3 and 4 holds withdrawn records, and whether both are queryable for every
          // kind, is not settled (§5.1): a refusal of either means "nothing under this status".
          if ((status === 3 || status === 4) && err instanceof FeishuError && err.category === 'permanent') break;
          throw err;
        }
        for (const ua of result.user_approvals) {
          if (ua.user_id !== args.userId) continue;
          const hit = (ua[array] ?? []).find(match);
          if (hit?.approval_id) return { approvalId: hit.approval_id, status };
        }
      }
    }
    return null;
  }

  private query(employeeType: EmployeeType, body: QueryUserApprovalsInput, signal: AbortSignal | undefined): Promise<QueryUserApprovalsResult> {
    return this.request<QueryUserApprovalsResult>({
      endpoint: 'query',
      path: QUERY_PATH,
      searchParams: { employee_type: employeeType },
      body,
      isWrite: false,
      signal,
      parse: parseQuery,
    });
  }

  private request<T>(spec: RequestSpec<T>): Promise<T> {
    let usedToken: string | undefined;
    const attempt = async (): Promise<T> => {
      // The slot first, then the token: the token is then as fresh as possible when sent.
      const slot = await this.limiter.acquire(spec.signal);
      const token = await this.tokens.getToken(spec.signal);
      usedToken = token;
      this.counters.requests += 1;
      const res = await this.http.send({
        endpoint: spec.endpoint,
        path: spec.path,
        searchParams: spec.searchParams,
        body: spec.body,
        token,
        signal: spec.signal,
        isWrite: spec.isWrite,
        onSent: () => this.limiter.sent(slot),
      });
      this.limiter.answered(slot);
      const failure = classifyResponse(spec.endpoint, res, spec.isWrite);
      if (failure) throw failure;
      this.onSuccess?.(spec.endpoint);
      return spec.parse(res);
    };
    return retryLoop(attempt, {
      policy: this.policy,
      signal: spec.signal,
      onTokenInvalid: () => this.tokens.invalidate(usedToken),
      ...(spec.onTransient ? { onTransient: spec.onTransient } : {}),
      onEvent: (e) => this.onRetryEvent(e),
    });
  }

  private onRetryEvent(e: RetryEvent): void {
    switch (e.type) {
      case 'rate_limited':
        this.counters.rateLimited += 1;
        this.limiter.throttled();
        this.logger?.warn('feishu rate limited; waiting for the reset', { ...e.error.toJSON(), delayMs: e.delayMs });
        break;
      case 'token_refresh':
        this.counters.tokenRefreshes += 1;
        this.logger?.warn('feishu token rejected; refreshing once', e.error.toJSON());
        break;
      case 'retry':
        this.counters.retries += 1;
        this.logger?.warn('feishu call failed; retrying', { ...e.error.toJSON(), attempt: e.attempt, delayMs: e.delayMs });
        break;
      case 'give_up':
        break;
    }
  }

  /** Count and log a final failure; returns the error to throw (unchanged). */
  private failed(endpoint: FeishuEndpoint, err: unknown, context: Record<string, unknown>): unknown {
    this.counters.failures += 1;
    // Warn only: the caller decides what the failure means (the sender raises one error line
    // for an auth or quota halt, not one per call).
    if (err instanceof FeishuError) this.logger?.warn(`feishu ${endpoint} failed`, { ...context, ...err.toJSON() });
    return err;
  }
}
