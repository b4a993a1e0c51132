import { resolveConfig } from '../src/config/load.js';
import { RetryPolicy } from '../src/feishu/retry.js';
import { backoffDelayMs, CALL_RETRY, retryPolicyFromConfig } from '../src/retryPolicy.js';
import { baseRawConfig } from './helpers/config.js';

describe('retry policy: both layers from one place', () => {
  it('defaults: 4 tries per call (as the client always had), feishu.max_attempts per operation', () => {
    const cfg = resolveConfig(baseRawConfig(), { env: {} });
    const p = retryPolicyFromConfig(cfg.feishu);
    expect(p.call).toEqual({ maxAttempts: 4, baseMs: 200, capMs: 5_000, floor: 0 });
    expect(p.operation).toEqual({ maxAttempts: 10, baseMs: 2_000, capMs: 900_000, floor: 0.5 });
    expect(new RetryPolicy().maxAttempts).toBe(CALL_RETRY.maxAttempts);
  });

  it('feishu.call_max_attempts sets the call layer; feishu.max_attempts keeps setting the operation layer', () => {
    const raw = baseRawConfig();
    raw.feishu.call_max_attempts = 2;
    raw.feishu.max_attempts = 7;
    const p = retryPolicyFromConfig(resolveConfig(raw, { env: {} }).feishu);
    expect(p.call.maxAttempts).toBe(2);
    expect(p.operation.maxAttempts).toBe(7);
  });

  it('rejects a call_max_attempts out of range, naming the key', () => {
    const raw = baseRawConfig();
    raw.feishu.call_max_attempts = 0;
    expect(() => resolveConfig(raw, { env: {} })).toThrow(/feishu\.call_max_attempts/);
  });

  it('one jitter: full for calls, [half, all] of the ceiling for operations', () => {
    const call = { baseMs: 100, capMs: 1_000, floor: 0 };
    expect([1, 2, 3, 4, 5, 9].map((n) => backoffDelayMs(n, call, () => 0.999999))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelayMs(3, call, () => 0)).toBe(0);
    const op = { baseMs: 100, capMs: 400, floor: 0.5 };
    expect([1, 2, 3, 4].map((n) => backoffDelayMs(n, op, () => 0))).toEqual([50, 100, 200, 200]);
    expect([1, 2, 3, 4].map((n) => backoffDelayMs(n, op, () => 0.999999))).toEqual([100, 200, 400, 400]);
  });
});
