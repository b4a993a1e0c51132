import { FeishuClient, type LookupRecord } from '../src/feishu/client.js';
import { isFeishuError } from '../src/feishu/errors.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { sampleLeave } from './helpers/approvals.js';

let seq = 0;
function approval(userId = 'u1') {
  seq++;
  return sampleLeave(userId, `c-${process.pid}-${seq}`, '测试');
}

function client(emu: Emulator, o: Partial<ConstructorParameters<typeof FeishuClient>[0]> = {}) {
  return new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret, timeoutMs: 2_000, backoffBaseMs: 10, backoffCapMs: 100, ...o });
}

describe('Feishu client against the emulator (real HTTP)', () => {
  let emu: Emulator;
  beforeAll(async () => {
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
  });
  afterAll(async () => emu.close());
  beforeEach(() => {
    emu.reset();
    emu.setOptions({ faults: {}, rateLimit: 1000, duplicateIdempotentId: 'conflict', revokeReply: 'full', clock: () => Date.now(), tokenTtlSeconds: 7200 });
  });

  it('200 concurrent calls with an empty cache fetch the token once', async () => {
    const c = client(emu, { rateLimit: 1000 });
    await Promise.all(Array.from({ length: 200 }, () => c.createUserApproval('employee_id', approval())));
    expect(emu.stats().tokenFetches).toBe(1);
    expect(emu.ledger()).toHaveLength(200);
  });

  it('a token expiring mid-run is refreshed without a failed call', async () => {
    let now = Date.now();
    emu.setOptions({ clock: () => now });
    const c = client(emu, { rateLimit: 1000, clock: { now: () => now } });
    for (let i = 0; i < 5; i++) await c.createUserApproval('employee_id', approval());
    now += 2 * 3600 * 1000 + 1000; // the token has expired on the server
    for (let i = 0; i < 5; i++) await c.createUserApproval('employee_id', approval());
    expect(emu.ledger()).toHaveLength(10);
    expect(c.stats().tokenFetches).toBe(2); // once at the start, once after expiry
    expect(emu.stats().tokensIssued).toBeGreaterThanOrEqual(1);
    expect(c.stats().failures).toBe(0);
  });

  it('500 calls at the limit of 50/s: zero 429s, no second of the server holds more than 50', async () => {
    emu.setOptions({ rateLimit: 50 });
    const c = client(emu, { rateLimit: 50 });
    const started = Date.now();
    await Promise.all(Array.from({ length: 500 }, () => c.createUserApproval('employee_id', approval())));
    const seconds = (Date.now() - started) / 1000;
    expect(emu.stats().rateLimited).toBe(0);
    expect(emu.stats().busiestSecond).toBeLessThanOrEqual(50);
    expect(emu.ledger()).toHaveLength(500);
    expect(500 / seconds).toBeGreaterThan(40);
  }, 30_000);

  it.each([
    ['5xx', { '5xx': 1 }, 'transient'],
    ['502 without JSON', { '502': 1 }, 'transient'],
    ['dropped connection', { drop: 1 }, 'ambiguous'],
    ['no row affected', { 'no-row-affected': 1 }, 'transient'],
    ['quota', { quota: 1 }, 'quota'],
  ] as const)('a persistent %s ends in a correctly classified failure', async (_name, faults, category) => {
    emu.setOptions({ faults: { ...faults } });
    const c = client(emu, { maxAttempts: 2 });
    const err = await c.createUserApproval('employee_id', approval()).catch((e: unknown) => e);
    expect(isFeishuError(err)).toBe(true);
    if (isFeishuError(err)) {
      expect([category, 'transient', 'ambiguous']).toContain(err.category);
      if (category === 'quota') expect(err.category).toBe('quota');
      expect(JSON.stringify(err)).not.toContain(emu.appSecret);
    }
  });

  it('occasional faults of every kind end in success', async () => {
    emu.setOptions({ faults: { '5xx': 0.05, '502': 0.05, drop: 0.05, '429': 0.05, 'no-row-affected': 0.05, 'stored-then-failed': 0.05 }, seed: 3 });
    const c = client(emu, { maxAttempts: 8 });
    const results = await Promise.all(Array.from({ length: 60 }, () => c.createUserApproval('employee_id', approval())));
    expect(results.every((r) => /^\d{19}$/.test(r.approvalId))).toBe(true);
    expect(emu.ledger()).toHaveLength(60);
    expect(new Set(emu.ledger().map((e) => e.idempotentId)).size).toBe(60);
  });

  it.each(['conflict', 'replay'] as const)('stored-then-failed, then the retry: one ledger entry and its approval_id (%s)', async (mode) => {
    emu.setOptions({ duplicateIdempotentId: mode, faults: { 'stored-then-failed': 1 } });
    const c = client(emu, { maxAttempts: 4 });
    const a = approval();
    const pending = c.createUserApproval('employee_id', a);
    // after the first (stored, then failed) attempt, let the retries through
    await new Promise((r) => setTimeout(r, 5));
    emu.setOptions({ faults: {} });
    const res = await pending;
    expect(emu.ledger()).toHaveLength(1);
    expect(res.approvalId).toBe(emu.ledger()[0]!.approvalId);
  });

  it('permanent errors are not retried; an unknown user is classified', async () => {
    emu.setOptions({ users: ['someone-else'] });
    const c = client(emu);
    const before = emu.stats().calls.create;
    const err = await c.createUserApproval('employee_id', approval('ghost')).catch((e: unknown) => e);
    expect(isFeishuError(err) && err.feishuCode).toBe(1220004);
    expect(isFeishuError(err) && err.retryable).toBe(false);
    expect(emu.stats().calls.create - before).toBe(1);
    emu.setOptions({ users: null });
  });

  it('a wrong secret is a non-retryable auth error that never shows the secret', async () => {
    const c = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: 'Wrong-Secret-123456', timeoutMs: 2_000 });
    const err = await c.createUserApproval('employee_id', approval()).catch((e: unknown) => e);
    expect(isFeishuError(err)).toBe(true);
    expect(isFeishuError(err) && err.retryable).toBe(false);
    expect(String((err as Error).message) + JSON.stringify(err)).not.toContain('Wrong-Secret-123456');
  });

  it('revoke: status 4 in the emulator; a second revoke is treated as done after a lookup', async () => {
    const c = client(emu);
    const a = approval();
    const { approvalId } = await c.createUserApproval('employee_id', a);
    await c.revokeApproval(approvalId, 'leave', { lookup: { employeeType: 'employee_id', userId: a.user_id, date: a.date, startTime: a.leaves[0].start_time, endTime: a.leaves[0].end_time } });
    expect(emu.ledger()[0]!.status).toBe(4);
    const again = await c.revokeApproval(approvalId, 'leave', { lookup: { employeeType: 'employee_id', userId: a.user_id, date: a.date, startTime: a.leaves[0].start_time, endTime: a.leaves[0].end_time } });
    expect(again.alreadyRevoked).toBe(true);
  });

  it('reports each lookup it ran to onLookup: by idempotent_id after "already exists", by approval_id after a refused revoke', async () => {
    emu.setOptions({ revokeTwice: 'error' });
    const seen: LookupRecord[] = [];
    const c = client(emu, { onLookup: (l) => seen.push(l) });
    const a = approval('u2');
    const first = await c.createUserApproval('employee_id', a);
    expect(seen).toEqual([]);
    const again = await c.createUserApproval('employee_id', a);
    expect(again).toMatchObject({ approvalId: first.approvalId, reconciled: true });
    expect(seen).toEqual([expect.objectContaining({ kind: 'leave', userId: 'u2', idempotentId: a.leaves[0].idempotent_id, approvalId: null, found: { approvalId: first.approvalId, status: 2 } })]);
    const lookup = { employeeType: 'employee_id' as const, userId: a.user_id, date: a.date, startTime: a.leaves[0].start_time, endTime: a.leaves[0].end_time };
    await c.revokeApproval(first.approvalId, 'leave', { lookup });
    expect(seen).toHaveLength(1);
    expect((await c.revokeApproval(first.approvalId, 'leave', { lookup })).alreadyRevoked).toBe(true);
    expect(seen[1]).toMatchObject({ idempotentId: null, approvalId: first.approvalId, statuses: [4, 3], found: { approvalId: first.approvalId } });
    expect([3, 4]).toContain(seen[1]!.found!.status);
  });

  it('revoke: a reply without a status is not success; it counts only once a lookup shows the item withdrawn', async () => {
    const c = client(emu, { maxAttempts: 2 });
    const a = approval();
    const lookup = { employeeType: 'employee_id' as const, userId: a.user_id, date: a.date, startTime: a.leaves[0].start_time, endTime: a.leaves[0].end_time };
    const { approvalId } = await c.createUserApproval('employee_id', a);
    // Code 0, no status, nothing changed: the approval is still in force, so the revoke fails.
    emu.setOptions({ revokeReply: 'no-status-unapplied' });
    const err = await c.revokeApproval(approvalId, 'leave', { lookup }).catch((e: unknown) => e);
    expect(isFeishuError(err) && err.code).toBe('FEISHU_BAD_RESPONSE');
    expect(isFeishuError(err) && err.retryable).toBe(true);
    expect(emu.ledger()[0]!.status).toBe(2);
    // Code 0, no status, the revoke applied: the retry is refused, and the lookup confirms it.
    emu.setOptions({ revokeReply: 'no-status' });
    const done = await c.revokeApproval(approvalId, 'leave', { lookup });
    expect(done).toMatchObject({ approvalId, alreadyRevoked: true });
    expect(emu.ledger()[0]!.status).toBe(4);
  });
});
