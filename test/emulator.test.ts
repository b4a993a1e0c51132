import fs from 'node:fs';
import * as lark from '@larksuiteoapi/node-sdk';
import { startEmulator, parseFaults, type Emulator } from '../src/emulator/index.js';
import { sampleLeave } from './helpers/approvals.js';

const SAMPLE = JSON.parse(fs.readFileSync('test/fixtures/user-approvals-create.request.json', 'utf8'));
const SAMPLE_RESPONSE = JSON.parse(fs.readFileSync('test/fixtures/user-approvals-create.response.json', 'utf8'));
const CREATE = '/open-apis/attendance/v1/user_approvals';

async function post(emu: Emulator, path: string, body: unknown, token?: string): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(emu.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

async function token(emu: Emulator): Promise<string> {
  const r = await post(emu, '/open-apis/auth/v3/tenant_access_token/internal', { app_id: emu.appId, app_secret: emu.appSecret });
  return r.body.tenant_access_token;
}

function leave(overrides: Record<string, unknown> = {}, ua: Record<string, unknown> = {}) {
  const base = sampleLeave('u1', 'fas-l-abc', '回老家');
  return { user_approval: { ...base, leaves: [{ ...base.leaves[0], i18n_names: { ch: '年假', en: 'Annual leave' }, ...overrides }], ...ua } };
}

describe('Feishu emulator', () => {
  let emu: Emulator;
  let tok: string;
  beforeAll(async () => {
    emu = await startEmulator({ strict: true });
    tok = await token(emu);
  });
  afterAll(async () => emu.close());
  beforeEach(() => emu.setOptions({ strict: true, duplicateIdempotentId: 'conflict', revokeTwice: 'error', faults: {}, users: null, rateLimit: 50, clock: () => Date.now() }));

  it("accepts the documentation's sample request unchanged outside strict mode, with the documented response shape", async () => {
    emu.setOptions({ strict: false });
    const r = await post(emu, `${CREATE}?employee_type=employee_id`, SAMPLE, tok);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-tt-logid')).toMatch(/^[0-9a-f]{24}$/);
    expect(r.body.code).toBe(0);
    const ua = r.body.data.user_approval;
    expect(Object.keys(ua).sort()).toEqual(Object.keys(SAMPLE_RESPONSE.data.user_approval).sort());
    for (const arr of ['leaves', 'outs', 'overtime_works', 'trips']) {
      expect(ua[arr]).toHaveLength(1);
      expect(ua[arr][0].approval_id).toMatch(/^\d{19}$/);
    }
    expect(new Set(['leaves', 'outs', 'overtime_works', 'trips'].map((a) => ua[a][0].approval_id)).size).toBe(4);
    expect(ua.leaves[0].approve_pass_time).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(ua.time_zone).toBe('Asia/Shanghai');
  });

  it('strict mode rejects the sample: uniq_id must be shorter than 14 characters', async () => {
    const r = await post(emu, `${CREATE}?employee_type=employee_id`, SAMPLE, tok);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe(1220001);
    expect(r.body.error.field_violations.map((v: any) => v.field)).toEqual(
      expect.arrayContaining(['user_approval.leaves[0].uniq_id', 'user_approval.outs[0].uniq_id']),
    );
  });

  const malformed: Array<[string, unknown, string]> = [
    ['no user_approval', {}, 'user_approval'],
    ['no user_id', leave({}, { user_id: undefined }), 'user_approval.user_id'],
    ['empty user_id', leave({}, { user_id: '' }), 'user_approval.user_id'],
    ['date not yyyyMMdd', leave({}, { date: '2026-03-02' }), 'user_approval.date'],
    ['date Feb 30', leave({}, { date: '20260230' }), 'user_approval.date'],
    ['no items', leave({}, { leaves: [] }), 'user_approval'],
    ['unit 5', leave({ unit: 5 }), 'user_approval.leaves[0].unit'],
    ['unit as string', leave({ unit: '1' }), 'user_approval.leaves[0].unit'],
    ['negative interval', leave({ interval: -1 }), 'user_approval.leaves[0].interval'],
    ['fractional interval', leave({ interval: 1.5 }), 'user_approval.leaves[0].interval'],
    ['start_time with T', leave({ start_time: '2026-03-02T09:00:00' }), 'user_approval.leaves[0].start_time'],
    ['start_time Feb 30', leave({ start_time: '2026-02-30 09:00:00' }), 'user_approval.leaves[0].start_time'],
    ['end_time 24:00', leave({ end_time: '2026-03-02 24:00:00' }), 'user_approval.leaves[0].end_time'],
    ['end before start', leave({ end_time: '2026-03-02 08:00:00' }), 'user_approval.leaves[0].end_time'],
    ['missing reason', leave({ reason: undefined }), 'user_approval.leaves[0].reason'],
    ['empty reason', leave({ reason: '' }), 'user_approval.leaves[0].reason'],
    ['bad default_locale', leave({ default_locale: 'zh' }), 'user_approval.leaves[0].default_locale'],
    ['default locale name missing', leave({ default_locale: 'ja' }), 'user_approval.leaves[0].i18n_names.ja'],
    ['uniq_id 14 chars (strict)', leave({ uniq_id: 'ABCDEFGHIJKLMN' }), 'user_approval.leaves[0].uniq_id'],
    ['idempotent_id too long', leave({ idempotent_id: 'x'.repeat(65) }), 'user_approval.leaves[0].idempotent_id'],
    ['out without uniq_id', { user_approval: { user_id: 'u1', date: '20260302', outs: [{ ...leave().user_approval.leaves[0], uniq_id: undefined }] } }, 'user_approval.outs[0].uniq_id'],
    [
      'overtime category 4',
      { user_approval: { user_id: 'u1', date: '20260302', overtime_works: [{ duration: 2, unit: 2, category: 4, type: 1, start_time: '2026-03-02 19:00:00', end_time: '2026-03-02 21:00:00' }] } },
      'user_approval.overtime_works[0].category',
    ],
    [
      'overtime type 3 (deprecated)',
      { user_approval: { user_id: 'u1', date: '20260302', overtime_works: [{ duration: 2, unit: 2, category: 1, type: 3, start_time: '2026-03-02 19:00:00', end_time: '2026-03-02 21:00:00' }] } },
      'user_approval.overtime_works[0].type',
    ],
    [
      'overtime without duration',
      { user_approval: { user_id: 'u1', date: '20260302', overtime_works: [{ unit: 2, category: 1, type: 1, start_time: '2026-03-02 19:00:00', end_time: '2026-03-02 21:00:00' }] } },
      'user_approval.overtime_works[0].duration',
    ],
    [
      'trip without approve_pass_time',
      { user_approval: { user_id: 'u1', date: '20260302', trips: [{ start_time: '2026-03-02 09:00:00', end_time: '2026-03-03 18:00:00', reason: '培训', approve_apply_time: '2026-03-01 10:00:00' }] } },
      'user_approval.trips[0].approve_pass_time',
    ],
    [
      'trip transportation 7',
      { user_approval: { user_id: 'u1', date: '20260302', trips: [{ start_time: '2026-03-02 09:00:00', end_time: '2026-03-03 18:00:00', reason: '培训', approve_pass_time: '2026-03-01 10:00:00', approve_apply_time: '2026-03-01 09:00:00', transportation: [7] }] } },
      'user_approval.trips[0].transportation[0]',
    ],
    [
      'trip_type 3',
      { user_approval: { user_id: 'u1', date: '20260302', trips: [{ start_time: '2026-03-02 09:00:00', end_time: '2026-03-03 18:00:00', reason: '培训', approve_pass_time: '2026-03-01 10:00:00', approve_apply_time: '2026-03-01 09:00:00', trip_type: 3 }] } },
      'user_approval.trips[0].trip_type',
    ],
    [
      'trip region level l5',
      { user_approval: { user_id: 'u1', date: '20260302', trips: [{ start_time: '2026-03-02 09:00:00', end_time: '2026-03-03 18:00:00', reason: '培训', approve_pass_time: '2026-03-01 10:00:00', approve_apply_time: '2026-03-01 09:00:00', departure: { region_level: 'l5' } }] } },
      'user_approval.trips[0].departure.region_level',
    ],
  ];

  it.each(malformed)('rejects %s with 1220001 naming the field', async (_name, body, field) => {
    const r = await post(emu, `${CREATE}?employee_type=employee_id`, JSON.parse(JSON.stringify(body)), tok);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe(1220001);
    expect(r.body.error.field_violations.map((v: any) => v.field)).toContain(field);
    expect(r.body.msg).toMatch(/param invalid/);
  });

  it('rejects a bad employee_type', async () => {
    const r = await post(emu, `${CREATE}?employee_type=email`, leave(), tok);
    expect(r.body).toMatchObject({ code: 1220001 });
    expect(r.body.msg).toMatch(/employee_type/);
  });

  it('answers auth problems with Feishu codes', async () => {
    expect((await post(emu, `${CREATE}?employee_type=employee_id`, leave())).body.code).toBe(99991661);
    expect((await post(emu, `${CREATE}?employee_type=employee_id`, leave(), 'abc')).body.code).toBe(99991671);
    const r = await post(emu, `${CREATE}?employee_type=employee_id`, leave(), 't-unknown');
    expect(r).toMatchObject({ status: 400, body: { code: 99991663 } });
    const bad = await post(emu, '/open-apis/auth/v3/tenant_access_token/internal', { app_id: emu.appId, app_secret: 'wrong' });
    expect(bad.body.code).toBe(10015);
    const missing = await post(emu, '/open-apis/auth/v3/tenant_access_token/internal', { app_id: emu.appId });
    expect(missing.body.code).toBe(10003);
  });

  it('token lifetime: the same token while ≥ 30 min remain, a new one after, expiry enforced', async () => {
    let now = Date.UTC(2026, 2, 2, 0, 0, 0);
    const e = await startEmulator({ clock: () => now });
    try {
      const t1 = await post(e, '/open-apis/auth/v3/tenant_access_token/internal', { app_id: e.appId, app_secret: e.appSecret });
      expect(t1.body).toMatchObject({ code: 0, expire: 7200 });
      expect(t1.body.tenant_access_token).toMatch(/^t-/);
      now += 60 * 60 * 1000;
      const t2 = await post(e, '/open-apis/auth/v3/tenant_access_token/internal', { app_id: e.appId, app_secret: e.appSecret });
      expect(t2.body.tenant_access_token).toBe(t1.body.tenant_access_token);
      expect(t2.body.expire).toBe(3600);
      now += 45 * 60 * 1000;
      const t3 = await post(e, '/open-apis/auth/v3/tenant_access_token/internal', { app_id: e.appId, app_secret: e.appSecret });
      expect(t3.body.tenant_access_token).not.toBe(t1.body.tenant_access_token);
      // the old one still works until it expires …
      expect((await post(e, `${CREATE}?employee_type=employee_id`, leave(), t1.body.tenant_access_token)).body.code).toBe(0);
      now += 20 * 60 * 1000;
      // … and not after
      expect((await post(e, `${CREATE}?employee_type=employee_id`, leave({ idempotent_id: 'other' }), t1.body.tenant_access_token)).body.code).toBe(99991663);
      expect(e.stats().tokensIssued).toBe(2);
    } finally {
      await e.close();
    }
  });

  it.each(['conflict', 'replay'] as const)('a repeated idempotent_id never stores a second record (%s)', async (mode) => {
    emu.reset();
    emu.setOptions({ duplicateIdempotentId: mode });
    const first = await post(emu, `${CREATE}?employee_type=employee_id`, leave({ idempotent_id: `dup-${mode}` }), tok);
    const second = await post(emu, `${CREATE}?employee_type=employee_id`, leave({ idempotent_id: `dup-${mode}` }), tok);
    expect(emu.ledger()).toHaveLength(1);
    expect(emu.posts()[`dup-${mode}`]).toBe(2);
    if (mode === 'conflict') expect(second.body).toMatchObject({ code: 1220600, msg: 'the object already exists' });
    else expect(second.body).toEqual(first.body);
  });

  it('rate limit: 60 calls in one second → 10 throttled with the rate-limit headers', async () => {
    const fixed = Date.UTC(2026, 2, 2, 1, 0, 0, 100);
    emu.setOptions({ clock: () => fixed });
    const before = emu.stats().rateLimited;
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => post(emu, `${CREATE}?employee_type=employee_id`, leave({ idempotent_id: `rl-${i}` }), tok)));
    const limited = results.filter((r) => r.status === 429);
    expect(limited).toHaveLength(10);
    expect(limited[0]!.body).toEqual({ code: 99991400, msg: 'request trigger frequency limit' });
    expect(limited[0]!.headers.get('x-ogw-ratelimit-limit')).toBe('50');
    expect(Number(limited[0]!.headers.get('x-ogw-ratelimit-reset'))).toBeGreaterThanOrEqual(1);
    expect(emu.stats().rateLimited - before).toBe(10);
    expect(emu.stats().busiestSecond).toBeGreaterThanOrEqual(60);
  });

  it('revoke sets status 4 and query then lists the item only under status 4; a second revoke per switch', async () => {
    emu.reset();
    const created = await post(emu, `${CREATE}?employee_type=employee_id`, leave({ idempotent_id: 'rv-1' }), tok);
    const approvalId = created.body.data.user_approval.leaves[0].approval_id;
    const today = Number(new Date().toISOString().slice(0, 10).replace(/-/g, ''));
    const q = (status: number) =>
      post(emu, '/open-apis/attendance/v1/user_approvals/query?employee_type=employee_id', { user_ids: ['u1'], check_date_from: 20260301, check_date_to: 20260310, status }, tok);
    expect((await q(2)).body.data.user_approvals[0].leaves[0].approval_id).toBe(approvalId);
    expect((await post(emu, '/open-apis/attendance/v1/approval_infos/process', { approval_id: approvalId, approval_type: 'overtime', status: 4 }, tok)).body.code).toBe(1220001);
    expect((await post(emu, '/open-apis/attendance/v1/approval_infos/process', { approval_id: approvalId, approval_type: 'leave', status: 2 }, tok)).body.code).toBe(1220001);
    const rv = await post(emu, '/open-apis/attendance/v1/approval_infos/process', { approval_id: approvalId, approval_type: 'leave', status: 4 }, tok);
    expect(rv.body).toMatchObject({ code: 0, data: { approval_info: { approval_id: approvalId, status: 4 } } });
    expect((await q(2)).body.data.user_approvals).toEqual([]);
    expect((await q(4)).body.data.user_approvals[0].leaves[0].approval_id).toBe(approvalId);
    expect((await post(emu, '/open-apis/attendance/v1/approval_infos/process', { approval_id: approvalId, approval_type: 'leave', status: 4 }, tok)).body.code).toBe(1220600);
    emu.setOptions({ revokeTwice: 'ok' });
    expect((await post(emu, '/open-apis/attendance/v1/approval_infos/process', { approval_id: approvalId, approval_type: 'leave', status: 4 }, tok)).body.code).toBe(0);
    expect((await post(emu, '/open-apis/attendance/v1/approval_infos/process', { approval_id: '1', approval_type: 'leave', status: 4 }, tok)).body.code).toBe(1220001);
    // query window rules
    const wide = await post(emu, '/open-apis/attendance/v1/user_approvals/query?employee_type=employee_id', { user_ids: ['u1'], check_date_from: 20260101, check_date_to: 20260301 }, tok);
    expect(wide.body.code).toBe(1220001);
    const future = await post(emu, '/open-apis/attendance/v1/user_approvals/query?employee_type=employee_id', { user_ids: ['u1'], check_date_from: today, check_date_to: today + 5 }, tok);
    expect(future.body.code).toBe(1220001);
  });

  it('unknown users get 1220004 when a user list is loaded', async () => {
    emu.setOptions({ users: ['u2'] });
    expect((await post(emu, `${CREATE}?employee_type=employee_id`, leave({ idempotent_id: 'uu' }), tok)).body.code).toBe(1220004);
  });

  it('faults repeat for a seed, and stored-then-failed stores the record while the caller sees an error', async () => {
    const run = async () => {
      emu.reset();
      emu.setOptions({ seed: 42, faults: parseFaults('5xx=0.2,429=0.1,no-row-affected=0.1,stored-then-failed=0.2') });
      const out: string[] = [];
      for (let i = 0; i < 30; i++) {
        try {
          const r = await post(emu, `${CREATE}?employee_type=employee_id`, leave({ idempotent_id: `f-${i}` }), tok);
          out.push(`${r.status}:${r.body?.code}`);
        } catch {
          out.push('dropped');
        }
      }
      return out;
    };
    const a = await run();
    const stats = emu.stats();
    const b = await run();
    expect(a).toEqual(b);
    expect(stats.faults['stored-then-failed']).toBeGreaterThan(0);
    const ok = a.filter((x) => x === '200:0').length;
    // every success and every stored-then-failed is in the ledger, nothing else
    expect(emu.ledger()).toHaveLength(ok + (stats.faults['stored-then-failed'] ?? 0));
    expect(a.some((x) => x === '500:1225000')).toBe(true);
    expect(() => parseFaults('boom=0.1')).toThrow(/unknown fault "boom"/);
    expect(() => parseFaults('5xx=2')).toThrow(/probability/);
  });

  it('exposes its ledger, stats, options and reset over HTTP', async () => {
    emu.reset();
    await post(emu, `${CREATE}?employee_type=employee_id`, leave({ idempotent_id: 'http-1' }), tok);
    const ledger = (await (await fetch(`${emu.url}/_emulator/ledger`)).json()) as any;
    expect(ledger.records).toHaveLength(1);
    expect(ledger.posts['http-1']).toBe(1);
    const stats = (await (await fetch(`${emu.url}/_emulator/stats`)).json()) as any;
    expect(stats.calls.create).toBe(1);
    await fetch(`${emu.url}/_emulator/options`, { method: 'POST', body: JSON.stringify({ faults: '5xx=1' }) });
    expect((await post(emu, `${CREATE}?employee_type=employee_id`, leave({ idempotent_id: 'http-2' }), tok)).status).toBe(500);
    await fetch(`${emu.url}/_emulator/reset`, { method: 'POST' });
    expect(emu.ledger()).toHaveLength(0);
  });

  it('the official Feishu Node SDK fetches a token and creates a user approval against it', async () => {
    emu.reset();
    const client = new lark.Client({ appId: emu.appId, appSecret: emu.appSecret, domain: emu.url, disableTokenCache: false });
    const res = await client.attendance.userApproval.create({
      params: { employee_type: 'employee_id' },
      data: leave({ idempotent_id: 'sdk-1' }) as any,
    });
    expect(res.code).toBe(0);
    expect(res.data?.user_approval?.leaves?.[0]?.approval_id).toMatch(/^\d{19}$/);
    expect(emu.ledger()[0]?.idempotentId).toBe('sdk-1');
    expect(emu.stats().tokenFetches).toBeGreaterThanOrEqual(1);
  });
});
