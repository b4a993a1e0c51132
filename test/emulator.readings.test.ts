import { DateTime } from 'luxon';
import { startEmulator, type Emulator, type EmulatorOptions } from '../src/emulator/index.js';
import { EMULATOR_OPTIONS_ENV, optionsFromEnv, parseOptionsJson } from '../src/emulator/options.js';
import { FeishuClient } from '../src/feishu/client.js';
import { FeishuError } from '../src/feishu/errors.js';
import type { UserApproval } from '../src/feishu/schema.js';

/*
 * Each switch for a behaviour the Feishu documentation leaves open, over real HTTP: the
 * emulator answers as the reading says, and the client copes with both readings.
 */

const TZ = 'Asia/Shanghai';
const DAY = DateTime.now().setZone(TZ).minus({ days: 3 });
const DATE = DAY.toFormat('yyyyMMdd');
const D = DAY.toFormat('yyyy-MM-dd');
const ymd = (dt: DateTime) => Number(dt.toFormat('yyyyMMdd'));
const today = DateTime.now().setZone(TZ).startOf('day');

function leave(idempotentId: string, userId = 'u1', o: { start?: string; end?: string; names?: Record<string, string> } = {}): UserApproval {
  return {
    user_id: userId,
    date: DATE,
    leaves: [
      {
        uniq_id: 'annual',
        unit: 1,
        interval: 28800,
        start_time: o.start ?? `${D} 09:00:00`,
        end_time: o.end ?? `${D} 18:00:00`,
        i18n_names: o.names ?? { ch: '年假', en: 'Annual leave', ja: '年次休暇' },
        default_locale: 'ch',
        reason: 'family',
        idempotent_id: idempotentId,
      },
    ],
  };
}

async function withEmulator(opts: Partial<EmulatorOptions>, fn: (emu: Emulator, client: FeishuClient) => Promise<void>): Promise<void> {
  const emu = await startEmulator({ strict: true, rateLimit: 1000, ...opts });
  try {
    await fn(emu, new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret, rateLimit: 500, backoffBaseMs: 5, backoffCapMs: 20 }));
  } finally {
    await emu.close();
  }
}

const around = { check_date_from: ymd(DAY.minus({ days: 1 })), check_date_to: ymd(DAY.plus({ days: 1 })) };

describe('revoked records in query: status 4 or 3', () => {
  it.each([4, 3] as const)('revokedStatus %s: the revoked leave shows only under it; the client resolves its key as withdrawn', async (revokedStatus) => {
    await withEmulator({ revokedStatus }, async (emu, client) => {
      const created = await client.createUserApproval('employee_id', leave('rv-1'));
      await client.revokeApproval(created.approvalId, 'leave');
      const under = async (status: 3 | 4) => (await client.queryUserApprovals('employee_id', { user_ids: ['u1'], ...around, status })).user_approvals.flatMap((u) => u.leaves ?? []);
      expect((await under(revokedStatus)).map((l) => l.approval_id)).toEqual([created.approvalId]);
      expect(await under(revokedStatus === 4 ? 3 : 4)).toEqual([]);
      // The key is taken by a withdrawn approval: a duplicate naming it (the sender then moves
      // to the next generation), never an unexplained ambiguity.
      const err = (await client.createUserApproval('employee_id', leave('rv-1')).catch((e: unknown) => e)) as FeishuError;
      expect(err).toBeInstanceOf(FeishuError);
      expect(err).toMatchObject({ code: 'FEISHU_DUPLICATE', approvalId: created.approvalId });
      // A revoke whose reply was lost is confirmed under either label.
      const again = await client.revokeApproval(created.approvalId, 'leave', { lookup: { employeeType: 'employee_id', userId: 'u1', date: DATE, startTime: `${D} 09:00:00`, endTime: `${D} 18:00:00` } });
      expect(again.alreadyRevoked).toBe(true);
      expect(emu.ledger()).toHaveLength(1);
    });
  });
});

describe('query window: "no more than 30 days" and the today + 1 cap', () => {
  const from = DAY.minus({ days: 40 });
  const span = (days: number) => ({ user_ids: ['u1'], check_date_from: ymd(from), check_date_to: ymd(from.plus({ days })) });
  it('exclusive: to − from = 30 is allowed, 31 refused', async () => {
    await withEmulator({ queryWindow: 'exclusive' }, async (_emu, client) => {
      await expect(client.queryUserApprovals('employee_id', span(30))).resolves.toBeDefined();
      await expect(client.queryUserApprovals('employee_id', span(31))).rejects.toMatchObject({ feishuCode: 1220001 });
    });
  });
  it('inclusive: to − from = 29 is allowed, 30 refused; the client never asks for more than 28', async () => {
    await withEmulator({ queryWindow: 'inclusive' }, async (emu, client) => {
      await expect(client.queryUserApprovals('employee_id', span(29))).resolves.toBeDefined();
      await expect(client.queryUserApprovals('employee_id', span(30))).rejects.toMatchObject({ feishuCode: 1220001 });
      // A long leave, then a lookup (a duplicate key) that must query around it.
      const long = leave('long-1', 'u1', { start: `${DAY.minus({ days: 60 }).toFormat('yyyy-MM-dd')} 09:00:00`, end: `${D} 18:00:00` });
      long.date = DAY.minus({ days: 60 }).toFormat('yyyyMMdd');
      const first = await client.createUserApproval('employee_id', long);
      const again = await client.createUserApproval('employee_id', long);
      expect(again).toMatchObject({ approvalId: first.approvalId, reconciled: true });
      expect(emu.stats().validationErrors).toBe(1); // only the deliberate 30-day query above
    });
  });
  it('cap on check_date_from (as documented) or on check_date_to: the client stays inside both', async () => {
    const tomorrow = today.plus({ days: 1 });
    const body = { user_ids: ['u1'], check_date_from: ymd(tomorrow), check_date_to: ymd(tomorrow.plus({ days: 5 })) };
    await withEmulator({ queryCapOn: 'from' }, async (_emu, client) => {
      await expect(client.queryUserApprovals('employee_id', body)).resolves.toBeDefined();
      await expect(client.queryUserApprovals('employee_id', { ...body, check_date_from: ymd(tomorrow.plus({ days: 1 })) })).rejects.toMatchObject({ feishuCode: 1220001 });
    });
    await withEmulator({ queryCapOn: 'to' }, async (emu, client) => {
      await expect(client.queryUserApprovals('employee_id', body)).rejects.toMatchObject({ feishuCode: 1220001 });
      // A leave that runs past tomorrow, looked up after a duplicate: no window crosses the cap.
      const ahead = leave('ahead-1', 'u1', { start: `${D} 09:00:00`, end: `${today.plus({ days: 6 }).toFormat('yyyy-MM-dd')} 18:00:00` });
      const first = await client.createUserApproval('employee_id', ahead);
      await expect(client.createUserApproval('employee_id', ahead)).resolves.toMatchObject({ approvalId: first.approvalId, reconciled: true });
      expect(emu.stats().validationErrors).toBe(1);
    });
  });
});

describe('user_ids per query', () => {
  it('the emulator caps at 50 (configurable); queryMany chunks at 50 users and 29 days', async () => {
    await withEmulator({}, async (emu, client) => {
      const users = Array.from({ length: 120 }, (_, i) => `u${i}`);
      await expect(client.queryUserApprovals('employee_id', { user_ids: users.slice(0, 51), ...around })).rejects.toMatchObject({ feishuCode: 1220001 });
      await client.createUserApproval('employee_id', leave('many-1', 'u7'));
      await client.createUserApproval('employee_id', leave('many-2', 'u101'));
      const before = emu.stats().calls.query;
      const from = ymd(DAY.minus({ days: 40 }));
      const res = await client.queryMany('employee_id', { userIds: users, from, to: ymd(DAY.plus({ days: 1 })) });
      // 42 days → two windows; 120 users → three groups.
      expect(emu.stats().calls.query - before).toBe(6);
      expect(res.user_approvals.map((u) => u.user_id).sort()).toEqual(['u101', 'u7']);
    });
    await withEmulator({ maxQueryUsers: 20 }, async (_emu, client) => {
      await expect(client.queryUserApprovals('employee_id', { user_ids: Array.from({ length: 21 }, (_, i) => `u${i}`), ...around })).rejects.toMatchObject({ feishuCode: 1220001 });
    });
  });
});

describe('departed employees: times in UTC+0, empty time_zone', () => {
  it('query shifts the departed user only; lookups still match by idempotent_id', async () => {
    await withEmulator({ departedUsers: ['gone'] }, async (emu, client) => {
      const first = await client.createUserApproval('employee_id', leave('dep-1', 'gone'));
      await client.createUserApproval('employee_id', leave('stay-1', 'here'));
      const res = await client.queryUserApprovals('employee_id', { user_ids: ['gone', 'here'], ...around });
      const gone = res.user_approvals.find((u) => u.user_id === 'gone')!;
      const here = res.user_approvals.find((u) => u.user_id === 'here')!;
      expect(gone.time_zone).toBe('');
      expect(gone.leaves![0]!.start_time).toBe(`${D} 01:00:00`); // 09:00 in Shanghai
      expect(here.time_zone).toBe(TZ);
      expect(here.leaves![0]!.start_time).toBe(`${D} 09:00:00`);
      await expect(client.createUserApproval('employee_id', leave('dep-1', 'gone'))).resolves.toMatchObject({ approvalId: first.approvalId, reconciled: true });
      expect(emu.ledger()).toHaveLength(2);
    });
  });
});

describe('i18n_names: all three locales required (old page) or none (new page)', () => {
  it('i18nNamesRequired refuses a missing locale and names it', async () => {
    await withEmulator({ i18nNamesRequired: true }, async (_emu, client) => {
      await expect(client.createUserApproval('employee_id', leave('i18n-1', 'u1', { names: { ch: '年假' } }))).rejects.toMatchObject({
        feishuCode: 1220001,
        feishuMsg: expect.stringContaining('i18n_names.en'),
      });
      await expect(client.createUserApproval('employee_id', leave('i18n-2'))).resolves.toBeDefined();
    });
  });
});

describe('overlapping leaves, revoke twice, repeated idempotent_id, echoed extras', () => {
  it('overlappingLeaves refuse: an overlap with an approved leave is refused; after its revoke it is accepted', async () => {
    await withEmulator({ overlappingLeaves: 'refuse' }, async (_emu, client) => {
      const a = await client.createUserApproval('employee_id', leave('ov-1'));
      await expect(client.createUserApproval('employee_id', leave('ov-2', 'u1', { start: `${D} 12:00:00` }))).rejects.toMatchObject({ feishuCode: 1220600, category: 'permanent' });
      await expect(client.createUserApproval('employee_id', leave('ov-3', 'u2'))).resolves.toBeDefined(); // another user
      await client.revokeApproval(a.approvalId, 'leave');
      await expect(client.createUserApproval('employee_id', leave('ov-2', 'u1', { start: `${D} 12:00:00` }))).resolves.toBeDefined();
    });
  });

  it.each(['error', 'ok'] as const)('revokeTwice %s: a second revoke ends withdrawn either way', async (revokeTwice) => {
    await withEmulator({ revokeTwice }, async (_emu, client) => {
      const a = await client.createUserApproval('employee_id', leave('twice-1'));
      await client.revokeApproval(a.approvalId, 'leave');
      const lookup = { employeeType: 'employee_id' as const, userId: 'u1', date: DATE, startTime: `${D} 09:00:00`, endTime: `${D} 18:00:00` };
      const again = await client.revokeApproval(a.approvalId, 'leave', { lookup });
      expect(again.status === 4 || again.alreadyRevoked).toBe(true);
    });
  });

  it.each(['conflict', 'conflict-with-data', 'replay'] as const)('duplicateIdempotentId %s: a repeat finds the first approval, nothing stored twice', async (duplicateIdempotentId) => {
    await withEmulator({ duplicateIdempotentId }, async (emu, client) => {
      const a = await client.createUserApproval('employee_id', leave('dup-1'));
      const b = await client.createUserApproval('employee_id', leave('dup-1'));
      expect(b.approvalId).toBe(a.approvalId);
      expect(emu.ledger()).toHaveLength(1);
    });
  });

  it('conflict-with-data carries the existing item in data', async () => {
    await withEmulator({ duplicateIdempotentId: 'conflict-with-data' }, async (emu) => {
      const client = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret });
      const a = await client.createUserApproval('employee_id', leave('dup-data'));
      const token = (await (await fetch(`${emu.url}/open-apis/auth/v3/tenant_access_token/internal`, { method: 'POST', body: JSON.stringify({ app_id: emu.appId, app_secret: emu.appSecret }) })).json()) as { tenant_access_token: string };
      const res = await fetch(`${emu.url}/open-apis/attendance/v1/user_approvals?employee_type=employee_id`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token.tenant_access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ user_approval: leave('dup-data') }),
      });
      const body = (await res.json()) as { code: number; data: { user_approval: { leaves: Array<{ approval_id: string }> } } };
      expect(body.code).toBe(1220600);
      expect(body.data.user_approval.leaves[0]!.approval_id).toBe(a.approvalId);
    });
  });

  it('leave_detail_range_objs echoed and interval omitted: the client reads neither', async () => {
    await withEmulator({ echoLeaveDetailRanges: true, queryInterval: 'omitted' }, async (_emu, client) => {
      const a = await client.createUserApproval('employee_id', leave('echo-1'));
      const res = await client.queryUserApprovals('employee_id', { user_ids: ['u1'], ...around });
      const item = res.user_approvals[0]!.leaves![0]! as Record<string, unknown>;
      expect(item.approval_id).toBe(a.approvalId);
      expect(item.interval).toBeUndefined();
      expect(item.leave_detail_range_objs).toEqual([{ day: Number(DATE), time_ranges: [{ start_time_stamp: expect.any(Number), end_time_stamp: expect.any(Number) }] }]);
      await expect(client.createUserApproval('employee_id', leave('echo-1'))).resolves.toMatchObject({ approvalId: a.approvalId });
    });
  });
});

describe('tenant-wide switches', () => {
  it('apiAccess off: every attendance call gets 1220004; appInUse off: 99991662, classified as auth', async () => {
    await withEmulator({ apiAccess: false }, async (_emu, client) => {
      await expect(client.createUserApproval('employee_id', leave('acc-1'))).rejects.toMatchObject({ feishuCode: 1220004, category: 'permanent' });
      await expect(client.queryUserApprovals('employee_id', { user_ids: ['u1'], ...around })).rejects.toMatchObject({ feishuCode: 1220004 });
    });
    await withEmulator({ appInUse: false }, async (_emu, client) => {
      await expect(client.createUserApproval('employee_id', leave('use-1'))).rejects.toMatchObject({ feishuCode: 99991662, category: 'auth' });
    });
  });
});

describe(`${EMULATOR_OPTIONS_ENV}`, () => {
  it('replaces the defaults; explicit options still win; bad values name the option', async () => {
    expect(optionsFromEnv({ [EMULATOR_OPTIONS_ENV]: '{"revokedStatus":3,"queryWindow":"inclusive"}' })).toEqual({ revokedStatus: 3, queryWindow: 'inclusive' });
    expect(optionsFromEnv({})).toEqual({});
    expect(() => parseOptionsJson('{"revokedStatus":5}')).toThrow(/revokedStatus must be one of 4, 3/);
    expect(() => parseOptionsJson('{"revokedStatuz":3}')).toThrow(/unknown option "revokedStatuz"/);
    expect(() => parseOptionsJson('[1]')).toThrow(/JSON object/);
    const saved = process.env[EMULATOR_OPTIONS_ENV];
    process.env[EMULATOR_OPTIONS_ENV] = '{"revokedStatus":3}';
    try {
      await withEmulator({}, async (_emu, client) => {
        const a = await client.createUserApproval('employee_id', leave('env-1'));
        await client.revokeApproval(a.approvalId, 'leave');
        const res = await client.queryUserApprovals('employee_id', { user_ids: ['u1'], ...around, status: 3 });
        expect(res.user_approvals).toHaveLength(1);
      });
      await withEmulator({ revokedStatus: 4 }, async (_emu, client) => {
        const a = await client.createUserApproval('employee_id', leave('env-2'));
        await client.revokeApproval(a.approvalId, 'leave');
        expect((await client.queryUserApprovals('employee_id', { user_ids: ['u1'], ...around, status: 3 })).user_approvals).toHaveLength(0);
      });
    } finally {
      if (saved === undefined) delete process.env[EMULATOR_OPTIONS_ENV];
      else process.env[EMULATOR_OPTIONS_ENV] = saved;
    }
  });
});
