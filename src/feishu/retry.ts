import { FeishuError } from './errors.js';
import { backoffDelayMs, CALL_RETRY } from '../retryPolicy.js';

/**
 * The call layer of the retry policy (see retryPolicy.ts for both layers). got's own retries are off (`retry: { limit: 0 }`): they would
 * bypass the shared rate limiter and got never retries POST anyway. Every attempt made by
 * this loop goes back through the limiter.
 */
export interface RetryPolicyOptions {
  /** Attempts of one call for transient errors (the first try included). Default 4. */
  maxAttempts?: number;
  /** First backoff ceiling; doubles per attempt. Default 200 ms. */
  baseMs?: number;
  /** Largest backoff ceiling. Default 5 s. */
  capMs?: number;
  /** Upper bound on the total time one call may spend waiting out 429s. Default 60 s. */
  maxRateLimitWaitMs?: number;
  /** Extra random wait added to a 429's reset time, at most this much. Default 250 ms. */
  rateLimitJitterMs?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

export class RetryPolicy {
  readonly maxAttempts: number;
  readonly baseMs: number;
  readonly capMs: number;
  readonly maxRateLimitWaitMs: number;
  readonly rateLimitJitterMs: number;
  private readonly random: () => number;

  constructor(opts: RetryPolicyOptions = {}) {
    this.maxAttempts = Math.max(1, Math.floor(opts.maxAttempts ?? CALL_RETRY.maxAttempts));
    this.baseMs = Math.max(0, opts.baseMs ?? CALL_RETRY.baseMs);
    this.capMs = Math.max(this.baseMs, opts.capMs ?? CALL_RETRY.capMs);
    this.maxRateLimitWaitMs = Math.max(0, opts.maxRateLimitWaitMs ?? 60_000);
    this.rateLimitJitterMs = Math.max(0, opts.rateLimitJitterMs ?? 250);
    this.random = opts.random ?? Math.random;
  }

  /**
   * Full jitter (uniform in [0, min(cap, base·2^(n−1))]): many workers failing together
   * spread their retries instead of returning in lock-step.
   */
  backoffMs(failedAttempts: number): number {
    return backoffDelayMs(failedAttempts, { baseMs: this.baseMs, capMs: this.capMs, floor: CALL_RETRY.floor }, this.random);
  }

  /**
   * Wait after a 429: `max(1, reset)` seconds plus jitter, as the frequency-control page asks.
   * Without the header, exponential backoff from one second.
   */
  rateLimitDelayMs(resetSeconds: number | undefined, hits: number): number {
    const jitter = Math.round(this.random() * this.rateLimitJitterMs);
    if (resetSeconds !== undefined) return Math.max(1, resetSeconds) * 1000 + jitter;
    return Math.min(30_000, 1000 * 2 ** Math.max(0, hits - 1)) + jitter;
  }
}

/** Sleep that ends early, with the signal's reason, when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  if (ms <= 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortReason(signal: AbortSignal | undefined): unknown {
  return signal?.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/** Resolve or reject with `promise`, or reject as soon as `signal` aborts (the promise keeps running). */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

export type RetryEvent =
  | { type: 'rate_limited'; error: FeishuError; delayMs: number }
  | { type: 'token_refresh'; error: FeishuError }
  | { type: 'retry'; error: FeishuError; attempt: number; delayMs: number }
  | { type: 'give_up'; error: FeishuError; attempt: number };

/** What a transient failure hook may decide: stop with a value, stop with an error, or go on retrying. */
export type TransientDecision<T> = { done: T } | { fail: unknown } | undefined;

export interface RetryLoopOptions<T> {
  policy: RetryPolicy;
  signal?: AbortSignal | undefined;
  /** Called once on a token-invalid error before the single retry (drop the cached token). */
  onTokenInvalid?: (error: FeishuError) => void;
  /**
   * Called after every transient failure, before the backoff (and also after the last one).
   * The create call uses it to look the record up by idempotent_id (§7.5).
   */
  onTransient?: (error: FeishuError, attempt: number, final: boolean) => Promise<TransientDecision<T>>;
  onEvent?: (event: RetryEvent) => void;
}

/**
 * Run `attempt` until it succeeds or fails for good.
 * - transient: up to `maxAttempts` tries with full-jitter backoff;
 * - rate_limited: wait for the reset; does not use up an attempt, but the total wait is bounded;
 * - token invalid: one immediate retry after `onTokenInvalid`;
 * - anything else (and any non-Feishu error, e.g. an abort): thrown at once.
 */
export async function retryLoop<T>(attempt: () => Promise<T>, opts: RetryLoopOptions<T>): Promise<T> {
  const { policy, signal } = opts;
  let failures = 0;
  let rateLimitHits = 0;
  let rateLimitWaitedMs = 0;
  let tokenRefreshed = false;
  for (;;) {
    if (signal?.aborted) throw abortReason(signal);
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof FeishuError) || signal?.aborted) throw signal?.aborted ? abortReason(signal) : err;
      if (err.category === 'rate_limited') {
        rateLimitHits += 1;
        const delayMs = policy.rateLimitDelayMs(err.resetSeconds, rateLimitHits);
        if (rateLimitWaitedMs + delayMs > policy.maxRateLimitWaitMs) throw err;
        rateLimitWaitedMs += delayMs;
        opts.onEvent?.({ type: 'rate_limited', error: err, delayMs });
        await sleep(delayMs, signal);
        continue;
      }
      if (err.tokenInvalid && !tokenRefreshed && opts.onTokenInvalid) {
        tokenRefreshed = true;
        opts.onEvent?.({ type: 'token_refresh', error: err });
        opts.onTokenInvalid(err);
        continue;
      }
      if (err.category !== 'transient') throw err;
      failures += 1;
      const final = failures >= policy.maxAttempts;
      const decision = opts.onTransient ? await opts.onTransient(err, failures, final) : undefined;
      if (decision && 'done' in decision) return decision.done;
      if (decision && 'fail' in decision) throw decision.fail;
      if (final) {
        opts.onEvent?.({ type: 'give_up', error: err, attempt: failures });
        throw err;
      }
      const delayMs = policy.backoffMs(failures);
      opts.onEvent?.({ type: 'retry', error: err, attempt: failures, delayMs });
      await sleep(delayMs, signal);
    }
  }
}
