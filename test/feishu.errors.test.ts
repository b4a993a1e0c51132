import { inspect } from 'node:util';
import { classifyResponse, classifyThrown, FeishuError, FeishuErrorCode, parseErrorRecords, type RawResponse } from '../src/feishu/errors.js';
import { RetryPolicy, retryLoop } from '../src/feishu/retry.js';
import { clearSecretsForTests, registerSecret } from '../src/log/redact.js';

function res(status: number, body: unknown, headers: Record<string, string> = {}): RawResponse {
  return { status, body, headers: { 'x-tt-logid': 'LOG123', ...headers } };
}

describe('classifyResponse', () => {
  it('returns undefined for a success envelope', () => {
    expect(classifyResponse('create', res(200, { code: 0, msg: 'success', data: {} }), true)).toBeUndefined();
  });

  it.each([
    // [http, code, msg, expected code, category]
    [429, 99991400, 'request trigger frequency limit', 'FEISHU_RATE_LIMITED', 'rate_limited'],
    [400, 99991400, 'request trigger frequency limit', 'FEISHU_RATE_LIMITED', 'rate_limited'],
    [400, 1000004, 'method rate limited', 'FEISHU_RATE_LIMITED', 'rate_limited'],
    [400, 1000005, 'app rate limited', 'FEISHU_RATE_LIMITED', 'rate_limited'],
    [400, 99991662, 'app not in use', 'FEISHU_AUTH', 'auth'],
    [400, 99991663, 'Invalid access token', 'FEISHU_TOKEN_INVALID', 'auth'],
    [200, 99991663, 'Invalid access token', 'FEISHU_TOKEN_INVALID', 'auth'],
    [400, 1220002, 'tenant_id is empty', 'FEISHU_TOKEN_INVALID', 'auth'],
    [400, 99991672, 'Access denied', 'FEISHU_SCOPE_MISSING', 'auth'],
    [429, 99991403, "This month's API call quota has been exceeded", 'FEISHU_QUOTA_EXCEEDED', 'quota'],
    [400, 1220001, 'employee_type invalid', 'FEISHU_PARAM_INVALID', 'permanent'],
    [400, 1220004, 'user_id is not exist', 'FEISHU_USER_NOT_FOUND', 'permanent'],
    [400, 1220005, 'no permission', 'FEISHU_NO_PERMISSION', 'permanent'],
    [400, 1220600, 'No Row Affected', 'FEISHU_NO_ROW_AFFECTED', 'transient'],
    [400, 1220600, 'the object already exists', 'FEISHU_DUPLICATE', 'duplicate'],
    [400, 1220600, 'the attendance result has been sealed and can not modify', 'FEISHU_SEALED', 'permanent'],
    [400, 1220600, 'something new', 'FEISHU_REJECTED', 'permanent'],
    [500, 1225000, 'internal server error', 'FEISHU_INTERNAL', 'transient'],
    [500, 1227500, 'shift service failed', 'FEISHU_INTERNAL', 'transient'],
    [500, 1227500, '[BatchGetLarkIDByOpenID] not find user larkID', 'FEISHU_USER_NOT_FOUND', 'permanent'],
    [400, 1225001, '{"LeaveErrorRecords":"bad"}', 'FEISHU_DATA_REJECTED', 'permanent'],
    // An unknown code: decided by the status.
    [503, 4242, 'busy', 'FEISHU_SERVER_ERROR', 'transient'],
    [400, 4242, 'nope', 'FEISHU_REJECTED', 'permanent'],
  ])('HTTP %i code %i "%s" → %s (%s)', (status, code, msg, expected, category) => {
    const err = classifyResponse('create', res(status, { code, msg }, { 'x-ogw-ratelimit-reset': '3' }), true);
    expect(err).toBeInstanceOf(FeishuError);
    expect(err).toMatchObject({ code: expected, category, httpStatus: status, feishuCode: code, logId: 'LOG123' });
    expect(err!.retryable).toBe(category === 'transient' || category === 'rate_limited');
  });

  it('reads the rate-limit reset header and the logid from the body when the header is missing', () => {
    const err = classifyResponse('query', { status: 429, headers: { 'x-ogw-ratelimit-reset': '7' }, body: { code: 99991400, msg: 'x', error: { logid: 'BODYLOG' } } }, false);
    expect(err).toMatchObject({ resetSeconds: 7, logId: 'BODYLOG' });
  });

  it('classifies token-endpoint config codes as FEISHU_CONFIG (exit 2)', () => {
    for (const code of [10003, 10014, 10015, 99991543, 99991401]) {
      const err = classifyResponse('token', res(400, { code, msg: 'bad app' }), false)!;
      expect(err).toMatchObject({ code: 'FEISHU_CONFIG', category: 'auth', retryable: false, exitCode: 2 });
    }
  });

  it('treats a bodyless 502 after a write as transient and possibly applied', () => {
    const err = classifyResponse('create', res(502, undefined), true)!;
    expect(err).toMatchObject({ code: 'FEISHU_SERVER_ERROR', category: 'transient', mayHaveApplied: true });
    expect(classifyResponse('query', res(502, undefined), false)!.mayHaveApplied).toBe(false);
    expect(classifyResponse('create', res(500, { code: 1225000, msg: 'internal' }), true)!.mayHaveApplied).toBe(true);
    expect(classifyResponse('create', res(400, { code: 1220600, msg: 'no row affected' }), true)!.mayHaveApplied).toBe(false);
  });

  it('parses 1225001 error records from msg, then data, else keeps the text', () => {
    expect(parseErrorRecords('{"TripErrorRecords":"","LeaveErrorRecords":"interval"}', undefined)).toEqual({ TripErrorRecords: '', LeaveErrorRecords: 'interval' });
    expect(parseErrorRecords('rejected', { OutErrorRecords: 'x' })).toEqual({ OutErrorRecords: 'x' });
    expect(parseErrorRecords('rejected: not json {', undefined)).toBe('rejected: not json {');
    const err = classifyResponse('create', res(500, { code: 1225001, msg: '{"OvertimeWorkErrorRecords":"overlap"}' }), true)!;
    expect(err.errorRecords).toEqual({ OvertimeWorkErrorRecords: 'overlap' });
  });
});

describe('classifyThrown', () => {
  it('maps timeouts and connection errors, keeping only name and code', () => {
    const timeout = Object.assign(new Error('Timeout awaiting request for 100ms'), { name: 'TimeoutError', code: 'ETIMEDOUT', event: 'request' });
    expect(classifyThrown('create', timeout, true)).toMatchObject({ code: 'FEISHU_TIMEOUT', category: 'transient', mayHaveApplied: true });
    const connect = Object.assign(new Error('x'), { name: 'TimeoutError', code: 'ETIMEDOUT', event: 'connect' });
    expect(classifyThrown('create', connect, true).mayHaveApplied).toBe(false);
    const reset = Object.assign(new Error('socket hang up'), { name: 'RequestError', code: 'ECONNRESET' });
    expect(classifyThrown('create', reset, true)).toMatchObject({ code: 'FEISHU_NETWORK', mayHaveApplied: true });
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { name: 'RequestError', code: 'ECONNREFUSED' });
    expect(classifyThrown('create', refused, true).mayHaveApplied).toBe(false);
  });

  it('never carries the bearer token or the secret of the failed request', () => {
    clearSecretsForTests();
    const token = 't-g10412345678901234567890abcdef';
    registerSecret('my-app-secret-value');
    const gotLike = Object.assign(new Error(`failed with Bearer ${token} my-app-secret-value`), {
      name: 'RequestError',
      code: 'ECONNRESET',
      options: { headers: { authorization: `Bearer ${token}` } },
    });
    const err = classifyThrown('create', gotLike, true);
    for (const text of [JSON.stringify(err), inspect(err, { depth: 10 }), String(err), err.stack ?? '']) {
      expect(text).not.toContain(token);
      expect(text).not.toContain('my-app-secret-value');
    }
    // An echoed secret in a Feishu msg is redacted too.
    const echoed = classifyResponse('token', res(400, { code: 10015, msg: 'wrong secret my-app-secret-value' }), false)!;
    expect(JSON.stringify(echoed)).not.toContain('my-app-secret-value');
    expect(echoed.message).not.toContain('my-app-secret-value');
    clearSecretsForTests();
  });
});

describe('RetryPolicy and retryLoop', () => {
  const fast = (o: ConstructorParameters<typeof RetryPolicy>[0] = {}) => new RetryPolicy({ baseMs: 1, capMs: 4, rateLimitJitterMs: 0, ...o });

  it('uses full jitter under an exponential, capped ceiling', () => {
    const p = new RetryPolicy({ baseMs: 100, capMs: 1000, random: () => 0.999999 });
    expect([1, 2, 3, 4, 5, 9].map((n) => p.backoffMs(n))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(new RetryPolicy({ baseMs: 100, random: () => 0 }).backoffMs(3)).toBe(0);
    expect(p.rateLimitDelayMs(0, 1)).toBeGreaterThanOrEqual(1000); // max(1, reset) seconds
    expect(new RetryPolicy({ rateLimitJitterMs: 0 }).rateLimitDelayMs(3, 1)).toBe(3000);
  });

  const transient = () => new FeishuError(FeishuErrorCode.INTERNAL, { endpoint: 'query' });
  const throttled = (reset: number) => new FeishuError(FeishuErrorCode.RATE_LIMITED, { endpoint: 'query', resetSeconds: reset });

  it('gives up on transient errors after maxAttempts', async () => {
    let calls = 0;
    await expect(
      retryLoop(
        async () => {
          calls++;
          throw transient();
        },
        { policy: fast({ maxAttempts: 3 }) },
      ),
    ).rejects.toMatchObject({ code: 'FEISHU_INTERNAL' });
    expect(calls).toBe(3);
  });

  it('does not count 429s against the attempt budget but bounds their total wait', async () => {
    let calls = 0;
    const out = await retryLoop(
      async () => {
        calls++;
        if (calls <= 2) throw throttled(0);
        if (calls === 3) throw transient();
        return 'ok';
      },
      { policy: new RetryPolicy({ maxAttempts: 2, baseMs: 1, rateLimitJitterMs: 0, maxRateLimitWaitMs: 5_000 }) },
    );
    expect(out).toBe('ok');
    expect(calls).toBe(4);
    let n = 0;
    await expect(
      retryLoop(
        async () => {
          n++;
          throw throttled(2);
        },
        { policy: new RetryPolicy({ maxRateLimitWaitMs: 1_000, rateLimitJitterMs: 0 }) },
      ),
    ).rejects.toMatchObject({ code: 'FEISHU_RATE_LIMITED' });
    expect(n).toBe(1); // a 2 s wait would exceed the 1 s bound: thrown at once
  });

  it('refreshes the token once, then fails', async () => {
    let invalidated = 0;
    let calls = 0;
    await expect(
      retryLoop(
        async () => {
          calls++;
          throw new FeishuError(FeishuErrorCode.TOKEN_INVALID, { endpoint: 'create' });
        },
        { policy: fast(), onTokenInvalid: () => invalidated++ },
      ),
    ).rejects.toMatchObject({ code: 'FEISHU_TOKEN_INVALID' });
    expect([calls, invalidated]).toEqual([2, 1]);
  });

  it('does not retry permanent errors', async () => {
    let calls = 0;
    await expect(
      retryLoop(
        async () => {
          calls++;
          throw new FeishuError(FeishuErrorCode.PARAM_INVALID, { endpoint: 'create' });
        },
        { policy: fast() },
      ),
    ).rejects.toMatchObject({ category: 'permanent' });
    expect(calls).toBe(1);
  });
});
