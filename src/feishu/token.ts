import type { Logger } from '../log/logger.js';
import { registerSecret } from '../log/redact.js';
import { classifyResponse, FeishuError, FeishuErrorCode, logIdOf } from './errors.js';
import { FeishuHttp, systemClock, type Clock } from './http.js';
import type { RateLimiter } from './limiter.js';
import { raceSignal, retryLoop, RetryPolicy } from './retry.js';

export const TOKEN_PATH = '/open-apis/auth/v3/tenant_access_token/internal';

export interface TokenProviderOptions {
  appId: string;
  appSecret: string;
  /** Either a base URL (a private HTTP client is made) or a shared FeishuHttp. */
  baseUrl?: string;
  http?: FeishuHttp;
  /** Token fetches take a slot of the shared limiter (at the head of its queue). */
  limiter?: RateLimiter;
  clock?: Clock;
  /** Refresh when less than this is left (default 5 min; capped at half the token's lifetime). */
  refreshMarginMs?: number;
  timeoutMs?: number;
  retry?: RetryPolicy;
  logger?: Logger;
}

export interface TokenProviderStats {
  fetches: number;
  fetchFailures: number;
  /** Clock time (ms) at which the cached token expires, if one is cached. */
  expiresAt: number | undefined;
}

interface CachedToken {
  token: string;
  expiresAt: number;
  refreshAt: number;
}

/**
 * tenant_access_token for a self-built app (feishu-api.md §2).
 *
 * - Cached until `refreshAt`: `expire` seconds from the response (never assumed to be 7200)
 *   minus the refresh margin. A refresh made with more than 30 min left would just return the
 *   same token, so the 5-minute margin gets a new token while the old one stays valid.
 * - Single flight: concurrent callers share one request.
 * - If a refresh fails for a transient reason while the cached token is still valid, the
 *   cached token is used; configuration errors (§2.3) are thrown as FEISHU_CONFIG.
 */
export class TokenProvider {
  private readonly appId: string;
  private readonly appSecret: string;
  private readonly http: FeishuHttp;
  private readonly limiter: RateLimiter | undefined;
  private readonly clock: Clock;
  private readonly refreshMarginMs: number;
  private readonly policy: RetryPolicy;
  private readonly logger: Logger | undefined;
  private cached: CachedToken | undefined;
  private inflight: Promise<string> | undefined;
  private fetches = 0;
  private fetchFailures = 0;

  constructor(opts: TokenProviderOptions) {
    if (!opts.http && !opts.baseUrl) throw new TypeError('TokenProvider needs baseUrl or http');
    this.appId = opts.appId;
    this.appSecret = opts.appSecret;
    registerSecret(opts.appSecret);
    this.http = opts.http ?? new FeishuHttp({ baseUrl: opts.baseUrl!, timeoutMs: opts.timeoutMs ?? 10_000 });
    this.limiter = opts.limiter;
    this.clock = opts.clock ?? systemClock;
    this.refreshMarginMs = opts.refreshMarginMs ?? 5 * 60_000;
    this.policy = opts.retry ?? new RetryPolicy();
    this.logger = opts.logger;
  }

  /** A token that is valid now and not due for refresh. */
  async getToken(signal?: AbortSignal): Promise<string> {
    const now = this.clock.now();
    const cached = this.cached;
    if (cached && now < cached.refreshAt) return cached.token;
    // One fetch for everyone; a caller's abort stops its own wait, not the shared fetch.
    this.inflight ??= this.refresh().finally(() => {
      this.inflight = undefined;
    });
    return raceSignal(this.inflight, signal);
  }

  /**
   * Drop the cached token after a token-invalid reply. With `staleToken`, only if it is still
   * the cached one: a call that failed with an old token must not throw away a new one.
   */
  invalidate(staleToken?: string): void {
    if (staleToken === undefined || this.cached?.token === staleToken) this.cached = undefined;
  }

  stats(): TokenProviderStats {
    return { fetches: this.fetches, fetchFailures: this.fetchFailures, expiresAt: this.cached?.expiresAt };
  }

  private async refresh(): Promise<string> {
    try {
      return await retryLoop(() => this.fetchOnce(), {
        policy: this.policy,
        onEvent: (e) => {
          if (e.type === 'retry' || e.type === 'rate_limited') {
            this.logger?.warn('feishu token fetch failed; retrying', { ...e.error.toJSON(), delayMs: e.delayMs });
          }
        },
      });
    } catch (err) {
      this.fetchFailures += 1;
      const stale = this.cached;
      // A transient failure while the old token still has a little life left: keep using it.
      if (err instanceof FeishuError && err.category !== 'auth' && stale && this.clock.now() < stale.expiresAt - 5_000) {
        this.logger?.warn('feishu token refresh failed; using the cached token until it expires', err.toJSON());
        return stale.token;
      }
      if (err instanceof FeishuError) this.logger?.warn('feishu token fetch failed', err.toJSON());
      throw err;
    }
  }

  private async fetchOnce(): Promise<string> {
    // Head of the queue: every waiting call needs this token before it can be sent.
    await this.limiter?.acquire(undefined, true);
    const startedAt = this.clock.now();
    this.fetches += 1;
    const res = await this.http.send({
      endpoint: 'token',
      path: TOKEN_PATH,
      body: { app_id: this.appId, app_secret: this.appSecret },
      isWrite: false,
    });
    const failure = classifyResponse('token', res, false);
    if (failure) throw failure.category === 'permanent' ? asAuthError(failure) : failure;
    const body = res.body as { tenant_access_token?: unknown; expire?: unknown };
    const token = body.tenant_access_token;
    const expire = body.expire;
    if (typeof token !== 'string' || token === '' || typeof expire !== 'number' || !(expire > 0)) {
      throw new FeishuError(FeishuErrorCode.BAD_RESPONSE, {
        endpoint: 'token',
        httpStatus: res.status,
        logId: logIdOf(res),
        causeText: 'token response without tenant_access_token / expire',
      });
    }
    registerSecret(token);
    const lifetimeMs = expire * 1000;
    // Measured from the request start, so network time only makes us refresh earlier.
    const expiresAt = startedAt + lifetimeMs;
    this.cached = { token, expiresAt, refreshAt: expiresAt - Math.min(this.refreshMarginMs, lifetimeMs / 2) };
    return token;
  }
}

/** Any other refusal by the token endpoint means the app cannot authenticate. */
function asAuthError(err: FeishuError): FeishuError {
  return new FeishuError(FeishuErrorCode.AUTH, {
    endpoint: 'token',
    httpStatus: err.httpStatus,
    feishuCode: err.feishuCode,
    feishuMsg: err.feishuMsg,
    logId: err.logId,
  });
}
