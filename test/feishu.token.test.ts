import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { FeishuClient } from '../src/feishu/client.js';
import { FeishuError } from '../src/feishu/errors.js';
import { RateLimiter } from '../src/feishu/limiter.js';
import { RetryPolicy } from '../src/feishu/retry.js';
import { TokenProvider } from '../src/feishu/token.js';

/** A query for one user over a short past window: a cheap, valid attendance call. */
function query(client: FeishuClient) {
  return client.queryUserApprovals('employee_id', { user_ids: ['u1'], check_date_from: 20260101, check_date_to: 20260105 });
}

describe('TokenProvider', () => {
  let emu: Emulator;
  afterEach(async () => {
    await emu.close();
  });

  it('fetches the token once for 200 concurrent calls with an empty cache', async () => {
    emu = await startEmulator({ rateLimit: 1000 });
    const client = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret, rateLimit: 500 });
    const results = await Promise.allSettled(Array.from({ length: 200 }, () => query(client)));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(emu.stats().tokenFetches).toBe(1);
    expect(client.stats().tokenFetches).toBe(1);
    expect(emu.stats().calls.query).toBe(200);
  });

  it('refreshes a short-lived token before it expires, without a failed call (real time)', async () => {
    emu = await startEmulator({ rateLimit: 1000, tokenTtlSeconds: 2 });
    const client = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret, rateLimit: 50 });
    // 180 calls at 50/s: about 3.7 s, so the 2-second token is replaced at least once.
    const results = await Promise.allSettled(Array.from({ length: 180 }, () => query(client)));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(emu.stats().tokensIssued).toBeGreaterThanOrEqual(2);
    // No call was ever answered "invalid token": the refresh came first.
    expect(client.stats().tokenRefreshes).toBe(0);
    expect(client.stats().failures).toBe(0);
  });

  it('refreshes when the injected clock passes the refresh point, reading `expire` (not 7200)', async () => {
    let now = Date.UTC(2026, 0, 10, 2, 0, 0);
    const clock = () => now;
    emu = await startEmulator({ rateLimit: 1000, tokenTtlSeconds: 3600, clock });
    const client = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret, rateLimit: 500, clock: { now: clock } });
    await Promise.all(Array.from({ length: 20 }, () => query(client)));
    const first = await client.tokens.getToken();
    expect(client.tokens.stats().expiresAt).toBe(now + 3600_000);
    // 54 min later: 6 min left, more than the 5-minute margin: still the same token.
    now += 54 * 60_000;
    await Promise.all(Array.from({ length: 20 }, () => query(client)));
    expect(await client.tokens.getToken()).toBe(first);
    expect(emu.stats().tokenFetches).toBe(1);
    // 2 more minutes: 4 min left, inside the margin: one refresh for all concurrent calls.
    now += 2 * 60_000;
    await Promise.all(Array.from({ length: 20 }, () => query(client)));
    expect(emu.stats().tokenFetches).toBe(2);
    expect(await client.tokens.getToken()).not.toBe(first);
    expect(client.stats()).toMatchObject({ tokenRefreshes: 0, failures: 0 });
  });

  it('drops a token the server rejects, fetches a new one and retries once', async () => {
    let serverNow = Date.UTC(2026, 0, 10, 2, 0, 0);
    emu = await startEmulator({ rateLimit: 1000, clock: () => serverNow, tokenErrorHttpStatus: 200 });
    const client = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret, rateLimit: 500 });
    await query(client);
    // Only the server's clock moves: our cache still thinks the token is fresh, the server does not.
    serverNow += 7300_000;
    await expect(query(client)).resolves.toBeDefined();
    expect(client.stats()).toMatchObject({ tokenRefreshes: 1, failures: 0 });
    expect(emu.stats().tokenFetches).toBe(2);
    expect(emu.stats().calls.query).toBe(3);
  });

  it('fails with FEISHU_CONFIG (exit code 2), not retried, on a wrong app secret', async () => {
    emu = await startEmulator();
    const client = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: 'definitely-wrong-secret', backoffBaseMs: 1 });
    const err = (await query(client).catch((e: unknown) => e)) as FeishuError;
    expect(err).toBeInstanceOf(FeishuError);
    expect(err).toMatchObject({ code: 'FEISHU_CONFIG', category: 'auth', feishuCode: 10015, retryable: false, exitCode: 2 });
    expect(emu.stats().tokenFetches).toBe(1);
    expect(emu.stats().calls.query).toBe(0);
    expect(JSON.stringify(err)).not.toContain('definitely-wrong-secret');
    expect(err.message).not.toContain('definitely-wrong-secret');
  });

  it('retries network errors with backoff, then fails as FEISHU_NETWORK', async () => {
    emu = await startEmulator();
    const url = emu.url;
    await emu.close();
    const tokens = new TokenProvider({ baseUrl: url, appId: 'cli_x', appSecret: 'some-secret', retry: new RetryPolicy({ maxAttempts: 3, baseMs: 1 }), limiter: new RateLimiter({ ratePerSecond: 100 }) });
    await expect(tokens.getToken()).rejects.toMatchObject({ code: 'FEISHU_NETWORK', category: 'transient' });
    expect(tokens.stats()).toMatchObject({ fetches: 3, fetchFailures: 1 });
    emu = await startEmulator(); // for afterEach
  });

  it('lets a caller abort its wait without cancelling the shared fetch', async () => {
    emu = await startEmulator({ latencyMs: 0 });
    const tokens = new TokenProvider({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret });
    const ac = new AbortController();
    const aborted = tokens.getToken(ac.signal);
    const other = tokens.getToken();
    ac.abort(new Error('stop waiting'));
    await expect(aborted).rejects.toThrow('stop waiting');
    await expect(other).resolves.toMatch(/^t-/);
    expect(tokens.stats().fetches).toBe(1);
  });
});
