import { classifyResponse, FeishuError, FeishuErrorCode, logIdOf, type RawResponse } from '../feishu/errors.js';
import { FeishuHttp } from '../feishu/http.js';
import { RateLimiter } from '../feishu/limiter.js';
import { retryLoop, RetryPolicy } from '../feishu/retry.js';
import type { TokenProvider } from '../feishu/token.js';
import type { Logger } from '../log/logger.js';

export const BATCH_GET_ID_PATH = '/open-apis/contact/v3/users/batch_get_id';

/** At most this many e-mails, and this many mobiles, in one batch_get_id call. */
export const MAX_ADDRESSES_PER_CALL = 50;

/** Which id the contact API returns: attendance's employee_id is the contact `user_id`. */
export type ContactIdType = 'user_id' | 'open_id';

export interface ContactUser {
  readonly email?: string | undefined;
  readonly mobile?: string | undefined;
  /** Absent: the address is not known to Feishu (or outside the app's contact scope). */
  readonly userId?: string | undefined;
  readonly resigned: boolean;
}

export interface ContactClientOptions {
  readonly baseUrl: string;
  /** The token provider of the attendance client: one token cache per app. */
  readonly tokens: TokenProvider;
  readonly timeoutMs?: number;
  readonly logger?: Logger | undefined;
  /** Per-second and per-minute budgets of batch_get_id (Feishu: 50/s and 1,000/min). */
  readonly perSecond?: number;
  readonly perMinute?: number;
  readonly maxAttempts?: number;
  readonly backoffBaseMs?: number;
  readonly backoffCapMs?: number;
}

/**
 * `POST /open-apis/contact/v3/users/batch_get_id`: e-mails and mobiles → Feishu user ids.
 *
 * Its rate limit is its own (50/s and 1,000/min, not the attendance endpoints' 50/s), so it
 * has limiters of its own; and contact calls are exempt from the monthly API quota, so they
 * are not counted against it. `include_resigned` is always true: departed staff still have
 * leave history to sync, and the answer says they resigned.
 */
export class ContactClient {
  private readonly http: FeishuHttp;
  private readonly perSecond: RateLimiter;
  private readonly perMinute: RateLimiter;
  private readonly policy: RetryPolicy;
  private calls = 0;

  constructor(private readonly o: ContactClientOptions) {
    this.http = new FeishuHttp({ baseUrl: o.baseUrl, timeoutMs: o.timeoutMs ?? 10_000 });
    this.perSecond = new RateLimiter({ ratePerSecond: o.perSecond ?? 50, slackMs: 50 });
    // A window of one minute: the last N calls must lie at least 60 s back.
    const perMinute = o.perMinute ?? 1000;
    this.perMinute = new RateLimiter({ ratePerSecond: perMinute, slackMs: 59_000 + 20 * Math.ceil(perMinute / 50) });
    this.policy = new RetryPolicy({
      maxAttempts: o.maxAttempts ?? 4,
      ...(o.backoffBaseMs !== undefined ? { baseMs: o.backoffBaseMs } : {}),
      ...(o.backoffCapMs !== undefined ? { capMs: o.backoffCapMs } : {}),
    });
  }

  /** batch_get_id calls made (HTTP attempts included). */
  callCount(): number {
    return this.calls;
  }

  /**
   * Resolve up to 50 e-mails and 50 mobiles in one call. Every address asked for comes back,
   * with `userId` absent when Feishu does not know it.
   */
  async batchGetId(idType: ContactIdType, ask: { emails?: readonly string[]; mobiles?: readonly string[] }, signal?: AbortSignal): Promise<ContactUser[]> {
    const emails = [...(ask.emails ?? [])];
    const mobiles = [...(ask.mobiles ?? [])];
    if (emails.length > MAX_ADDRESSES_PER_CALL || mobiles.length > MAX_ADDRESSES_PER_CALL) {
      throw new RangeError(`batch_get_id takes at most ${MAX_ADDRESSES_PER_CALL} e-mails and ${MAX_ADDRESSES_PER_CALL} mobiles a call`);
    }
    if (emails.length === 0 && mobiles.length === 0) return [];
    let usedToken: string | undefined;
    const attempt = async (): Promise<ContactUser[]> => {
      // The token first: slots taken while the first token is fetched would all be spent at
      // once when it arrives, more than the budget in one server second.
      const token = await this.o.tokens.getToken(signal);
      await this.perMinute.acquire(signal);
      await this.perSecond.acquire(signal);
      usedToken = token;
      this.calls += 1;
      const res = await this.http.send({
        endpoint: 'contact',
        path: BATCH_GET_ID_PATH,
        searchParams: { user_id_type: idType },
        body: { ...(emails.length > 0 ? { emails } : {}), ...(mobiles.length > 0 ? { mobiles } : {}), include_resigned: true },
        token,
        signal,
        isWrite: false,
      });
      const failure = classifyResponse('contact', res, false);
      if (failure) throw failure;
      return parseUserList(res, emails, mobiles);
    };
    try {
      return await retryLoop(attempt, {
        policy: this.policy,
        signal,
        onTokenInvalid: () => this.o.tokens.invalidate(usedToken),
        onEvent: (e) => {
          if (e.type === 'retry' || e.type === 'rate_limited') this.o.logger?.warn(`feishu contact batch_get_id: ${e.type === 'retry' ? 'retrying' : 'rate limited'}`, { ...e.error.toJSON() });
        },
      });
    } catch (err) {
      if (err instanceof FeishuError) this.o.logger?.warn('feishu contact batch_get_id failed', err.toJSON());
      throw err;
    }
  }
}

function parseUserList(res: RawResponse, emails: string[], mobiles: string[]): ContactUser[] {
  const data = (res.body as { data?: { user_list?: unknown } } | undefined)?.data;
  const list = data?.user_list ?? [];
  if (!Array.isArray(list)) {
    throw new FeishuError(FeishuErrorCode.BAD_RESPONSE, { endpoint: 'contact', httpStatus: res.status, logId: logIdOf(res), causeText: 'batch_get_id response without user_list' });
  }
  const byEmail = new Map<string, ContactUser>();
  const byMobile = new Map<string, ContactUser>();
  for (const raw of list as Array<Record<string, unknown>>) {
    const userId = typeof raw.user_id === 'string' && raw.user_id !== '' ? raw.user_id : undefined;
    const status = (raw.status ?? {}) as { is_resigned?: unknown };
    const u: ContactUser = {
      ...(typeof raw.email === 'string' ? { email: raw.email } : {}),
      ...(typeof raw.mobile === 'string' ? { mobile: raw.mobile } : {}),
      userId,
      resigned: status.is_resigned === true,
    };
    // An address may appear twice (found and not found): the answer with an id wins.
    if (u.email !== undefined && (!byEmail.has(u.email.toLowerCase()) || userId)) byEmail.set(u.email.toLowerCase(), u);
    if (u.mobile !== undefined && (!byMobile.has(u.mobile) || userId)) byMobile.set(u.mobile, u);
  }
  return [
    ...emails.map((e) => byEmail.get(e.toLowerCase()) ?? { email: e, resigned: false }),
    ...mobiles.map((m) => byMobile.get(m) ?? { mobile: m, resigned: false }),
  ].map((u, i) => (i < emails.length ? { ...u, email: emails[i] } : { ...u, mobile: mobiles[i - emails.length] }));
}
