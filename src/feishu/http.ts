import type { ClientRequest } from 'node:http';
import got, { type Got } from 'got';
import { classifyThrown, type FeishuEndpoint, type RawResponse } from './errors.js';
import { abortReason } from './retry.js';

/** Epoch milliseconds; injectable so tests can move time (token expiry) without sleeping. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = Object.freeze({ now: () => Date.now() });

export interface HttpOptions {
  baseUrl: string;
  /** Whole-request timeout (got `timeout.request`). */
  timeoutMs: number;
}

export interface SendArgs {
  endpoint: FeishuEndpoint;
  path: string;
  searchParams?: Record<string, string> | undefined;
  body: unknown;
  token?: string | undefined;
  signal?: AbortSignal | undefined;
  /** The call writes (create, process): a lost reply may hide a stored write. */
  isWrite: boolean;
  /** Called once the request has been written to the socket (the rate limiter counts sends). */
  onSent?: (() => void) | undefined;
}

/**
 * One HTTP attempt, no retries. Replies of any status come back as a RawResponse, so the
 * caller classifies them on the body code first; transport failures come back as a
 * FeishuError built from the error's name and code only (got errors carry the headers).
 */
export class FeishuHttp {
  private readonly got: Got;

  constructor(opts: HttpOptions) {
    this.got = got.extend({
      prefixUrl: opts.baseUrl.replace(/\/+$/, ''),
      retry: { limit: 0 },
      timeout: { request: opts.timeoutMs },
      throwHttpErrors: false,
      followRedirect: false,
      responseType: 'text',
      headers: { 'user-agent': 'feishu-attendance-sync' },
    });
  }

  async send(args: SendArgs): Promise<RawResponse> {
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
    if (args.token !== undefined) headers.authorization = `Bearer ${args.token}`;
    let response;
    try {
      const pending = this.got.post(args.path.replace(/^\/+/, ''), {
        headers,
        body: JSON.stringify(args.body),
        ...(args.searchParams ? { searchParams: args.searchParams } : {}),
        ...(args.signal ? { signal: args.signal } : {}),
      });
      const onSent = args.onSent;
      if (onSent) pending.on('request', (req: ClientRequest) => req.once('finish', onSent));
      response = await pending;
    } catch (err) {
      // Never rethrow the got error itself: its options hold the Authorization header.
      if (args.signal?.aborted) throw abortReason(args.signal);
      throw classifyThrown(args.endpoint, err, args.isWrite);
    }
    let body: unknown;
    try {
      body = response.body === '' ? undefined : JSON.parse(response.body);
    } catch {
      body = undefined;
    }
    return { status: response.statusCode, headers: response.headers, body };
  }
}
