/**
 * The retry policy, both layers in one place.
 *
 * - The **call** layer runs inside one Feishu call (feishu/retry.ts): a transient failure
 *   (5xx, timeout, dropped connection) is tried again at once, up to `call.maxAttempts` tries,
 *   with a short backoff. Configured by `feishu.call_max_attempts` (default 4).
 * - The **operation** layer runs across cycles (send/): a call that still fails hands its
 *   operation back to the outbox, due again after a longer backoff; after
 *   `operation.maxAttempts` such attempts it is dead. Configured by `feishu.max_attempts`,
 *   `feishu.retry_base_ms` and `feishu.retry_max_ms`.
 *
 * Both wait `min(cap, base · 2^(n−1))` after the n-th failure, jittered by the one
 * `backoffDelayMs`: the call layer waits anywhere in [0, that] (full jitter: many workers
 * failing together spread out), the operation layer in [half, all] of it (an operation never
 * comes back much sooner than its backoff says).
 */

export interface Backoff {
  /** Ceiling after the first failure; doubles with each further one. */
  readonly baseMs: number;
  /** Largest ceiling. */
  readonly capMs: number;
  /** The share of the ceiling always waited: 0 is full jitter, 0.5 equal jitter. */
  readonly floor: number;
}

export interface RetryLayer extends Backoff {
  /** Attempts in this layer, the first included. */
  readonly maxAttempts: number;
}

export interface RetryPolicySettings {
  readonly call: RetryLayer;
  readonly operation: RetryLayer;
}

/** The call layer's defaults (the client's options override them). */
export const CALL_RETRY: RetryLayer = Object.freeze({ maxAttempts: 4, baseMs: 200, capMs: 5_000, floor: 0 });
/** The share of its backoff an operation always waits. */
export const OPERATION_JITTER_FLOOR = 0.5;

/** The wait after the `failures`-th failure: exponential, capped, jittered. */
export function backoffDelayMs(failures: number, b: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(b.capMs, b.baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(ceiling * b.floor + ceiling * (1 - b.floor) * random());
}

/** The configuration keys of both layers (`feishu.*`). */
export interface RetryConfig {
  readonly call_max_attempts?: number | undefined;
  readonly max_attempts: number;
  readonly retry_base_ms: number;
  readonly retry_max_ms: number;
}

/** Both layers from the configuration. */
export function retryPolicyFromConfig(f: RetryConfig): RetryPolicySettings {
  return {
    call: { ...CALL_RETRY, maxAttempts: f.call_max_attempts ?? CALL_RETRY.maxAttempts },
    operation: { maxAttempts: f.max_attempts, baseMs: f.retry_base_ms, capMs: f.retry_max_ms, floor: OPERATION_JITTER_FLOOR },
  };
}
