import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import { DateTime } from 'luxon';
import { startEmulator, FAULT_KINDS, type Emulator, type FaultKind } from '../src/emulator/index.js';
import { FeishuClient, type UserApprovalInput } from '../src/feishu/client.js';
import { FeishuError, type FeishuErrorCode } from '../src/feishu/errors.js';
import type { UserApproval } from '../src/feishu/schema.js';
import { createLogger } from '../src/log/logger.js';
import { clearSecretsForTests } from '../src/log/redact.js';

// The validated request type of schema.ts fits the client's input type.
const fits = (ua: UserApproval): UserApprovalInput => ua;
void fits;

const USERS = ['u1', 'u2', 'u3'];
// Records a few days back, so PeriodTime lookups are allowed (today + 1 cap).
const DAY = DateTime.now().setZone('Asia/Shanghai').minus({ days: 3 });
const DATE = DAY.toFormat('yyyyMMdd');
const D = DAY.toFormat('yyyy-MM-dd');

function leave(idempotentId: string, userId = 'u1', uniqId = 'annual'): UserApproval {
  return {
    user_id: userId,
    date: DATE,
    leaves: [
      {
        uniq_id: uniqId,
        unit: 1,
        interval: 28800,
        start_time: `${D} 09:00:00`,
        end_time: `${D} 18:00:00`,
        i18n_names: { ch: '年假', en: 'Annual leave' },
        default_locale: 'ch',
        reason: 'family',
        idempotent_id: idempotentId,
      },
    ],
  };
}

function captureLogs() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { logger: createLogger({ format: 'json', level: 'debug', stream }), lines };
}

function makeClient(emu: Emulator, extra: Partial<ConstructorParameters<typeof FeishuClient>[0]> = {}) {
  return new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret, rateLimit: 200, backoffBaseMs: 5, backoffCapMs: 50, ...extra });
}

/** The one ledger entry per idempotent_id, failing the test if there are more. */
function ledgerByKey(emu: Emulator): Map<string, string> {
  const map = new Map<string, string>();
  for (const e of emu.ledger()) {
    if (e.idempotentId === null) continue;
    expect(map.has(e.idempotentId)).toBe(false);
    map.set(e.idempotentId, e.approvalId);
  }
  return map;
}

let emu: Emulator;
afterEach(async () => {
  await emu.close();
  clearSecretsForTests();
});

describe('FeishuClient.createUserApproval', () => {
  it('creates one item and returns its approval_id', async () => {
    emu = await startEmulator({ users: USERS, strict: true });
    const client = makeClient(emu);
    const r = await client.createUserApproval('employee_id', leave('k-plain'));
    expect(r).toEqual({ approvalId: emu.ledger()[0]!.approvalId, idempotentId: 'k-plain', reconciled: false });
    expect(emu.stats().calls.create).toBe(1);
  });

  it('rejects payloads that do not hold exactly one item with an idempotent_id', async () => {
    emu = await startEmulator();
    const client = makeClient(emu);
    const two = leave('a');
    two.outs = [{ ...two.leaves![0]!, uniq_id: 'x' }];
    await expect(client.createUserApproval('employee_id', two)).rejects.toThrow(/exactly one item/);
    const noKey = leave('b');
    delete noKey.leaves![0]!.idempotent_id;
    await expect(client.createUserApproval('employee_id', noKey)).rejects.toThrow(/idempotent_id/);
    expect(emu.stats().calls.create).toBe(0);
  });

  it.each(['conflict', 'replay'] as const)('a repeated idempotent_id returns the first approval_id (duplicate mode %s)', async (mode) => {
    emu = await startEmulator({ users: USERS, duplicateIdempotentId: mode });
    const client = makeClient(emu);
    const first = await client.createUserApproval('employee_id', leave('k-dup'));
    const again = await client.createUserApproval('employee_id', leave('k-dup'));
    expect(again.approvalId).toBe(first.approvalId);
    // conflict: "the object already exists" → found by query; replay: the first answer again.
    expect(again.reconciled).toBe(mode === 'conflict');
    expect(client.stats().reconciliations).toBe(mode === 'conflict' ? 1 : 0);
    expect(emu.ledger()).toHaveLength(1);
  });

  it('"already exists" for a record it cannot find stays ambiguous (retried later, never failed); a withdrawn one is a duplicate', async () => {
    emu = await startEmulator({ users: USERS, duplicateIdempotentId: 'conflict' });
    const client = makeClient(emu);
    const first = await client.createUserApproval('employee_id', leave('k-taken', 'u1'));
    // Same key for another user: the key is taken but no record of u2 carries it.
    const notFound = await client.createUserApproval('employee_id', leave('k-taken', 'u2')).catch((e: unknown) => e);
    expect(notFound).toMatchObject({ code: 'FEISHU_AMBIGUOUS', category: 'ambiguous', feishuCode: 1220600, retryable: true, approvalId: undefined });
    // Revoked: the key points at a withdrawn record, which a create cannot bring back.
    await client.revokeApproval(first.approvalId, 'leave');
    const revoked = await client.createUserApproval('employee_id', leave('k-taken', 'u1')).catch((e: unknown) => e);
    expect(revoked).toMatchObject({ code: 'FEISHU_DUPLICATE', category: 'duplicate', approvalId: first.approvalId });
    expect(emu.ledger()).toHaveLength(1);
  });

  it.each(['conflict', 'replay'] as const)(
    'stored-then-failed: one ledger entry per key and the client returns that entry (duplicate mode %s)',
    async (mode) => {
      emu = await startEmulator({ users: USERS, duplicateIdempotentId: mode, faults: { 'stored-then-failed': 0.35 }, seed: 7 });
      const client = makeClient(emu, { maxAttempts: 8 });
      const keys = Array.from({ length: 60 }, (_, i) => `k-stf-${mode}-${i}`);
      const results = await Promise.allSettled(keys.map((k, i) => client.createUserApproval('employee_id', leave(k, USERS[i % 3]))));
      const byKey = ledgerByKey(emu);
      let reconciled = 0;
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') {
          expect(r.value.approvalId).toBe(byKey.get(keys[i]!));
          if (r.value.reconciled) reconciled++;
        } else {
          // Only an unresolved outcome may fail, and then it says so.
          expect(r.reason).toBeInstanceOf(FeishuError);
          expect(['transient', 'ambiguous']).toContain((r.reason as FeishuError).category);
        }
      });
      expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(55);
      expect(emu.stats().faults['stored-then-failed']).toBeGreaterThan(10);
      expect(reconciled).toBeGreaterThan(5);
      expect(client.stats().reconciliations).toBe(reconciled);
      // Every key that was posted is stored exactly once, whatever the client saw.
      expect(new Set(byKey.keys())).toEqual(new Set(Object.keys(emu.posts())));
    },
  );

  /** What a fault must turn into if it is the reason a call finally fails. */
  const EXPECTED: Record<FaultKind, FeishuErrorCode[]> = {
    '5xx': ['FEISHU_INTERNAL', 'FEISHU_AMBIGUOUS'],
    '502': ['FEISHU_SERVER_ERROR', 'FEISHU_AMBIGUOUS'],
    slow: ['FEISHU_TIMEOUT', 'FEISHU_AMBIGUOUS'],
    drop: ['FEISHU_NETWORK', 'FEISHU_AMBIGUOUS'],
    '429': ['FEISHU_RATE_LIMITED'],
    '1000004': ['FEISHU_RATE_LIMITED'],
    '1000005': ['FEISHU_RATE_LIMITED'],
    'stored-then-failed': ['FEISHU_INTERNAL', 'FEISHU_NETWORK', 'FEISHU_AMBIGUOUS'],
    'no-row-affected': ['FEISHU_NO_ROW_AFFECTED'],
    quota: ['FEISHU_QUOTA_EXCEEDED'],
  };

  it.each([...FAULT_KINDS])('fault %s ends in success or a correctly classified failure', async (fault) => {
    emu = await startEmulator({ users: USERS, faults: { [fault]: 0.3 }, seed: 11, slowMs: 400 });
    const client = makeClient(emu, { timeoutMs: 150 });
    const keys = Array.from({ length: 30 }, (_, i) => `k-${fault}-${i}`);
    const results = await Promise.allSettled(keys.map((k, i) => client.createUserApproval('employee_id', leave(k, USERS[i % 3]))));
    expect(emu.stats().faults[fault]).toBeGreaterThan(0);
    const byKey = ledgerByKey(emu);
    const failures: FeishuError[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') expect(r.value.approvalId).toBe(byKey.get(keys[i]!));
      else failures.push(r.reason as FeishuError);
    });
    for (const f of failures) {
      expect(f).toBeInstanceOf(FeishuError);
      expect(EXPECTED[fault]).toContain(f.code);
    }
    if (fault === 'quota') {
      // Never retried: every quota answer ends its call.
      expect(failures.length).toBe(emu.stats().faults.quota);
      expect(failures.every((f) => f.category === 'quota' && !f.retryable)).toBe(true);
    } else {
      // Retried: most calls get through a 30 % fault rate.
      expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(24);
    }
  });
});

describe('permanent errors', () => {
  it('are not retried and carry code, msg and logid', async () => {
    emu = await startEmulator({ users: USERS, strict: true, sealedUntil: '20000101' });
    const client = makeClient(emu);
    const cases: Array<[UserApproval, string, number]> = [
      [leave('k-ghost', 'ghost'), 'FEISHU_USER_NOT_FOUND', 1220004],
      [leave('k-long', 'u1', 'a-uniq-id-far-too-long'), 'FEISHU_PARAM_INVALID', 1220001],
    ];
    for (const [ua, code, feishuCode] of cases) {
      const before = emu.stats().calls.create;
      const err = (await client.createUserApproval('employee_id', ua).catch((e: unknown) => e)) as FeishuError;
      expect(err).toMatchObject({ code, category: 'permanent', feishuCode, httpStatus: 400, retryable: false });
      expect(err.logId).toMatch(/^[0-9a-f]{24}$/);
      expect(emu.stats().calls.create - before).toBe(1);
    }
    const sealed = leave('k-sealed');
    sealed.date = '19991231';
    sealed.leaves![0]!.start_time = '1999-12-31 09:00:00';
    sealed.leaves![0]!.end_time = '1999-12-31 18:00:00';
    const err = await client.createUserApproval('employee_id', sealed).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FEISHU_SEALED', category: 'permanent' });
    expect(emu.stats().calls.create).toBe(3);
    const badQuery = await client
      .queryUserApprovals('employee_id', { user_ids: ['u1'], check_date_from: 20250101, check_date_to: 20250301 })
      .catch((e: unknown) => e);
    expect(badQuery).toMatchObject({ code: 'FEISHU_PARAM_INVALID' });
    expect(emu.stats().calls.query).toBe(1);
    expect(client.stats()).toMatchObject({ retries: 0, failures: 4 });
  });

  it('exposes the field violations of a 1220001', async () => {
    emu = await startEmulator({ strict: true });
    const client = makeClient(emu);
    const err = (await client.createUserApproval('employee_id', leave('k-fv', 'u1', 'a-uniq-id-far-too-long')).catch((e: unknown) => e)) as FeishuError;
    expect(err.fieldViolations?.[0]?.field).toBe('user_approval.leaves[0].uniq_id');
  });
});

describe('revokeApproval and findByIdempotentId', () => {
  it('revokes, and a repeated revoke is success only once a query shows the item withdrawn', async () => {
    emu = await startEmulator({ users: USERS, revokeTwice: 'error', revokedStatus: 4 }); // asserts the error reading of a repeat revoke
    const client = makeClient(emu);
    const created = await client.createUserApproval('employee_id', leave('k-rev'));
    const lookup = { employeeType: 'employee_id' as const, userId: 'u1', date: DATE };
    expect(await client.findByIdempotentId({ ...lookup, kind: 'leave', idempotentId: 'k-rev' })).toEqual({ approvalId: created.approvalId, status: 2 });
    await expect(client.revokeApproval(created.approvalId, 'leave')).resolves.toEqual({ approvalId: created.approvalId, status: 4, alreadyRevoked: false });
    expect(emu.ledger()[0]!.status).toBe(4);
    // Without lookup context the error of the second revoke is thrown as it is.
    await expect(client.revokeApproval(created.approvalId, 'leave')).rejects.toMatchObject({ code: 'FEISHU_REJECTED', feishuCode: 1220600 });
    await expect(client.revokeApproval(created.approvalId, 'leave', { lookup })).resolves.toEqual({ approvalId: created.approvalId, status: 4, alreadyRevoked: true });
    expect(await client.findByIdempotentId({ ...lookup, kind: 'leave', idempotentId: 'k-rev' })).toEqual({ approvalId: created.approvalId, status: 4 });
    expect(await client.findByIdempotentId({ ...lookup, kind: 'leave', idempotentId: 'k-none' })).toBeNull();
  });

  it('does not treat a failed revoke as success when the item is still approved', async () => {
    emu = await startEmulator({ users: USERS });
    const client = makeClient(emu);
    const created = await client.createUserApproval('employee_id', leave('k-wrongtype'));
    const lookup = { employeeType: 'employee_id' as const, userId: 'u1', date: DATE };
    // Wrong approval_type: 1220001; the query shows the leave still approved, so the error stands.
    await expect(client.revokeApproval(created.approvalId, 'trip', { lookup })).rejects.toMatchObject({ code: 'FEISHU_PARAM_INVALID' });
    expect(emu.ledger()[0]!.status).toBe(2);
  });

  it('finds a future record by CreateTime (PeriodTime cannot reach past today + 1)', async () => {
    emu = await startEmulator({ users: USERS });
    const client = makeClient(emu);
    const future = DateTime.now().setZone('Asia/Shanghai').plus({ days: 20 });
    const ua = leave('k-future');
    ua.date = future.toFormat('yyyyMMdd');
    ua.leaves![0]!.start_time = `${future.toFormat('yyyy-MM-dd')} 09:00:00`;
    ua.leaves![0]!.end_time = `${future.toFormat('yyyy-MM-dd')} 18:00:00`;
    const created = await client.createUserApproval('employee_id', ua);
    const found = await client.findByIdempotentId({
      employeeType: 'employee_id',
      userId: 'u1',
      date: ua.date,
      kind: 'leave',
      idempotentId: 'k-future',
      startTime: ua.leaves![0]!.start_time,
      createdFrom: Date.now() - 60_000,
    });
    expect(found).toEqual({ approvalId: created.approvalId, status: 2 });
    expect(emu.stats().validationErrors).toBe(0);
  });
});

describe('secrets', () => {
  it('errors and logs never contain the app secret or the token', async () => {
    emu = await startEmulator({ users: USERS, strict: true, appSecret: 'emulator-secret-VALUE-42' });
    const { logger, lines } = captureLogs();
    const client = makeClient(emu, { logger, maxAttempts: 2 });
    const token = await client.tokens.getToken();
    const errors: unknown[] = [];
    errors.push(await client.createUserApproval('employee_id', leave('k-s1', 'ghost')).catch((e: unknown) => e));
    errors.push(await client.createUserApproval('employee_id', leave('k-s2', 'u1', 'a-uniq-id-far-too-long')).catch((e: unknown) => e));
    emu.setOptions({ faults: { drop: 1 } });
    errors.push(await client.createUserApproval('employee_id', leave('k-s3')).catch((e: unknown) => e));
    emu.setOptions({ faults: { '502': 1 } });
    errors.push(await client.queryUserApprovals('employee_id', { user_ids: ['u1'], check_date_from: 20260101, check_date_to: 20260102 }).catch((e: unknown) => e));
    emu.setOptions({ faults: {} });
    const wrong = makeClient(emu, { appSecret: 'wrong-secret-VALUE-43', logger });
    errors.push(await wrong.queryUserApprovals('employee_id', { user_ids: ['u1'], check_date_from: 20260101, check_date_to: 20260102 }).catch((e: unknown) => e));

    expect(errors.map((e) => (e as FeishuError).code)).toEqual(['FEISHU_USER_NOT_FOUND', 'FEISHU_PARAM_INVALID', 'FEISHU_AMBIGUOUS', 'FEISHU_SERVER_ERROR', 'FEISHU_CONFIG']);
    const texts = [
      ...errors.flatMap((e) => [JSON.stringify(e), inspect(e, { depth: 10, showHidden: true }), String(e), (e as Error).stack ?? '']),
      lines.join('\n'),
    ];
    for (const text of texts) {
      expect(text).not.toContain(token);
      expect(text).not.toContain(token.slice(2));
      expect(text).not.toContain('emulator-secret-VALUE-42');
      expect(text).not.toContain('wrong-secret-VALUE-43');
    }
    // Every failure was logged with its logid (when the server sent one).
    expect(lines.some((l) => l.includes('"logId"') && l.includes('FEISHU_USER_NOT_FOUND'))).toBe(true);
  });
});
