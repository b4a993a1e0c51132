import { resolveConfig } from '../src/config/load.js';
import { mapRow, type MappedRow, type SourceRow } from '../src/mapping/map.js';
import { idempotencyKey, versionHash } from '../src/identity.js';
import { baseRawConfig } from './helpers/config.js';
import type { AnyKindConfig } from '../src/config/schema.js';

const raw = baseRawConfig();
raw.kinds.leave.types.SICK = { uniq_id: 'SICK', names: { ch: '病假', en: 'Sick leave' } };
raw.kinds.overtime = {
  source: { table: 'overtime_requests' },
  key: 'id',
  fields: {
    user_id: 'employee_no',
    start_time: 'start_at',
    end_time: 'end_at',
    category: { column: 'day_type', map: { WORKDAY: 1, RESTDAY: 2, HOLIDAY: 3 } },
    type: { column: 'compensation', map: { NONE: 0, LIEU: 1, PAY: 2 } },
    duration: { column: 'hours', unit: 'hours' },
    reason: 'reason',
  },
};
raw.kinds.trip = {
  source: { table: 'trip_requests' },
  key: 'id',
  fields: {
    user_id: 'employee_no',
    start_time: 'start_at',
    end_time: 'end_at',
    reason: { column: 'reason', default: '出差' },
    approve_pass_time: 'approved_at',
    approve_apply_time: 'applied_at',
    destination_region_level: { value: 'l3' },
    destination_region_ids: 'destination',
    transportation: { column: 'transport', map: { PLANE: 1, TRAIN: 2, CAR: 3 } },
    trip_type: { column: 'round_trip', map: { '1': 2, '0': 1, true: 2, false: 1 } },
    remarks: 'remarks',
  },
};
raw.kinds.out = {
  source: { table: 'out_requests' },
  key: 'id',
  deleted: { column: 'is_deleted', values: [1] },
  fields: { user_id: 'employee_no', start_time: 'start_at', end_time: 'end_at', type: 'out_type', unit: { value: 2 }, reason: 'reason' },
  types: { CLIENT: { uniq_id: 'OUT_CLIENT', names: { ch: '拜访客户' } } },
};
const cfg = resolveConfig(raw, { env: {} });
const ctx = { sourceTimeZone: 'Asia/Shanghai', feishuTimeZone: 'Asia/Shanghai' };
const k = (kind: 'leave' | 'overtime' | 'trip' | 'out') => cfg.kinds[kind] as AnyKindConfig;

const leaveRow = (o: SourceRow = {}): SourceRow => ({
  id: 101,
  employee_no: 'E001',
  leave_type_code: 'ANNUAL',
  unit: 'DAY',
  duration: '16',
  start_at: '2026-03-02 09:00:00',
  end_at: '2026-03-03 18:00:00',
  reason: '回老家',
  status: 'approved',
  deleted_at: null,
  updated_at: '2026-03-01 10:00:00',
  ...o,
});

function valid(m: MappedRow) {
  if (m.outcome !== 'valid') throw new Error(`expected valid, got ${JSON.stringify(m)}`);
  return m;
}

describe('mapping: all four kinds', () => {
  it('maps a multi-day leave with type map, unit map and duration in hours', () => {
    const m = valid(mapRow('leave', k('leave'), leaveRow(), ctx));
    expect(m.request).toEqual({
      user_id: 'E001',
      date: '20260302',
      leaves: [
        {
          uniq_id: 'ANNUAL',
          unit: 1,
          interval: 57600,
          start_time: '2026-03-02 09:00:00',
          end_time: '2026-03-03 18:00:00',
          i18n_names: { ch: '年假', en: 'Annual leave', ja: '年假' }, // ja filled from the default locale
          default_locale: 'ch',
          reason: '回老家',
        },
      ],
    });
    expect(m.effectiveDate).toBe('2026-03-02');
    expect(m.sourceKey).toBe('101');
  });

  it('fills i18n_names missing locales from the default name, without changing the version of records synced before', () => {
    const m = valid(mapRow('leave', k('leave'), leaveRow(), ctx));
    const asConfigured = { ...m.request, leaves: [{ ...m.request.leaves![0]!, i18n_names: { ch: '年假', en: 'Annual leave' } }] };
    expect(m.version).toBe(versionHash(asConfigured));
    expect(Object.keys(m.request.leaves![0]!.i18n_names).sort()).toEqual(['ch', 'en', 'ja']);
  });

  it('maps half-day and hourly leave', () => {
    const half = valid(mapRow('leave', k('leave'), leaveRow({ unit: 'HALF_DAY', duration: '4', end_at: '2026-03-02 13:00:00' }), ctx));
    expect(half.request.leaves?.[0]).toMatchObject({ unit: 3, interval: 14400 });
    const hourly = valid(mapRow('leave', k('leave'), leaveRow({ unit: 'HOUR', duration: 1.5, end_at: '2026-03-02 10:30:00' }), ctx));
    expect(hourly.request.leaves?.[0]).toMatchObject({ unit: 2, interval: 5400 });
  });

  it('maps overtime with category, type and duration in the unit', () => {
    const m = valid(
      mapRow('overtime', k('overtime'), { id: 7, employee_no: 'E002', start_at: '2026-03-07 09:00:00', end_at: '2026-03-07 12:30:00', day_type: 'RESTDAY', compensation: 'LIEU', hours: '3.5', reason: null }, ctx),
    );
    expect(m.request).toEqual({
      user_id: 'E002',
      date: '20260307',
      overtime_works: [{ duration: 3.5, unit: 2, category: 2, type: 1, start_time: '2026-03-07 09:00:00', end_time: '2026-03-07 12:30:00' }],
    });
  });

  it('maps a trip with destinations, transportation list and approve times', () => {
    const m = valid(
      mapRow(
        'trip',
        k('trip'),
        { id: 9, employee_no: 'E003', start_at: '2026-03-10 00:00:00', end_at: '2026-03-12 23:59:59', reason: '', destination: '6863333418483058189,6863333418483058190', transport: 'PLANE,TRAIN', round_trip: 1, applied_at: '2026-03-01 09:00:00', approved_at: '2026-03-02 10:00:00', remarks: '客户现场' },
        ctx,
      ),
    );
    expect(m.request.trips?.[0]).toEqual({
      start_time: '2026-03-10 00:00:00',
      end_time: '2026-03-12 23:59:59',
      reason: '出差',
      approve_pass_time: '2026-03-02 10:00:00',
      approve_apply_time: '2026-03-01 09:00:00',
      destinations: [
        { region_level: 'l3', region_id: '6863333418483058189' },
        { region_level: 'l3', region_id: '6863333418483058190' },
      ],
      transportation: [1, 2],
      trip_type: 2,
      remarks: '客户现场',
    });
  });

  it('maps an out with a constant unit; is_deleted = 1 means deleted, 0 does not', () => {
    const row = { id: 3, employee_no: 'E004', out_type: 'CLIENT', start_at: '2026-03-02 14:00:00', end_at: '2026-03-02 16:00:00', reason: '拜访客户', is_deleted: 0 };
    expect(valid(mapRow('out', k('out'), row, ctx)).request.outs?.[0]).toMatchObject({ uniq_id: 'OUT_CLIENT', unit: 2, interval: 7200 });
    expect(mapRow('out', k('out'), { ...row, is_deleted: 1 }, ctx)).toMatchObject({ outcome: 'inactive', reason: 'deleted' });
  });

  it('UTC sources vs local wall-time sources give the right Feishu wall clock', () => {
    const utc = valid(mapRow('leave', k('leave'), leaveRow({ start_at: '2026-03-02 01:00:00', end_at: '2026-03-02 10:00:00' }), { ...ctx, sourceTimeZone: 'UTC' }));
    expect(utc.request.leaves?.[0]).toMatchObject({ start_time: '2026-03-02 09:00:00', end_time: '2026-03-02 18:00:00' });
    const local = valid(mapRow('leave', k('leave'), leaveRow({ start_at: '2026-03-02 01:00:00', end_at: '2026-03-02 10:00:00' }), ctx));
    expect(local.request.leaves?.[0]).toMatchObject({ start_time: '2026-03-02 01:00:00' });
    // a UTC evening is the next day in Shanghai: `date` follows the attendance zone
    const late = valid(mapRow('leave', k('leave'), leaveRow({ start_at: '2026-03-01 17:00:00', end_at: '2026-03-02 10:00:00' }), { ...ctx, sourceTimeZone: 'UTC' }));
    expect(late.request.date).toBe('20260302');
    // explicit offsets and Date objects are instants
    expect(valid(mapRow('leave', k('leave'), leaveRow({ start_at: '2026-03-02T01:00:00Z' }), ctx)).request.leaves?.[0]?.start_time).toBe('2026-03-02 09:00:00');
    expect(valid(mapRow('leave', k('leave'), leaveRow({ start_at: new Date('2026-03-02T01:00:00Z') }), ctx)).request.leaves?.[0]?.start_time).toBe('2026-03-02 09:00:00');
    expect(valid(mapRow('leave', k('leave'), leaveRow({ start_at: '2026-03-02 09:00:00.123456' }), ctx)).request.leaves?.[0]?.start_time).toBe('2026-03-02 09:00:00');
  });

  it('cancelled, rejected, pending and soft-deleted rows are inactive, whatever their content', () => {
    expect(mapRow('leave', k('leave'), leaveRow({ status: 'cancelled', start_at: 'garbage' }), ctx)).toMatchObject({ outcome: 'inactive', reason: 'cancelled' });
    expect(mapRow('leave', k('leave'), leaveRow({ status: 'rejected' }), ctx)).toMatchObject({ outcome: 'inactive', reason: 'cancelled' });
    expect(mapRow('leave', k('leave'), leaveRow({ status: 'pending' }), ctx)).toMatchObject({ outcome: 'inactive', reason: 'not_approved' });
    expect(mapRow('leave', k('leave'), leaveRow({ deleted_at: '2026-03-05 10:00:00' }), ctx)).toMatchObject({ outcome: 'inactive', reason: 'deleted' });
  });
});

type Case = [string, SourceRow, 'valid' | RegExp, { kind?: 'leave' | 'overtime' | 'trip' | 'out'; zone?: string }?];

const hostile: Case[] = [
  ['null key', leaveRow({ id: null }), /key \(column id\): is empty/],
  ['null employee', leaveRow({ employee_no: null }), /fields\.user_id \(column employee_no\): is empty/],
  ['null start', leaveRow({ start_at: null }), /fields\.start_time \(column start_at\): is empty/],
  ['null end', leaveRow({ end_at: null }), /fields\.end_time \(column end_at\): is empty/],
  ['null type', leaveRow({ leave_type_code: null }), /fields\.type \(column leave_type_code\): is empty/],
  ['end before start', leaveRow({ end_at: '2026-03-01 09:00:00' }), /end_time is before start_time/],
  ['zero-length span', leaveRow({ end_at: '2026-03-02 09:00:00' }), /zero-length/],
  ['400-day span', leaveRow({ end_at: '2027-04-10 09:00:00' }), /longer than 366 days/],
  ['Feb 30', leaveRow({ start_at: '2026-02-30 09:00:00' }), /"2026-02-30 09:00:00" is not a real date/],
  ['hour 25', leaveRow({ end_at: '2026-03-02 25:00:00' }), /is not a real date or time/],
  ['not a timestamp', leaveRow({ start_at: 'tomorrow morning' }), /is not a timestamp/],
  ['DST gap in New York', leaveRow({ start_at: '2026-03-08 02:30:00', end_at: '2026-03-08 09:00:00' }), /does not exist in America\/New_York/, { zone: 'America/New_York' }],
  ['DST overlap in New York (valid, earlier offset)', leaveRow({ start_at: '2026-11-01 01:30:00', end_at: '2026-11-01 09:00:00' }), 'valid', { zone: 'America/New_York' }],
  ['unknown type code', leaveRow({ leave_type_code: 'XYZ' }), /unknown type code "XYZ" \(not in kinds\.leave\.types\)/],
  ['unknown unit code', leaveRow({ unit: 'WEEK' }), /fields\.unit \(column unit\): unknown value "WEEK"/],
  ['negative duration', leaveRow({ duration: -3 }), /fields\.interval \(column duration\): "-3" is not a non-negative number/],
  ['duration not a number', leaveRow({ duration: 'abc' }), /is not a non-negative number/],
  ['empty reason uses the default', leaveRow({ reason: '' }), 'valid'],
  ['control characters and emoji', leaveRow({ reason: 'sick\u0000\u0007 😷🤒 day\u001b' }), 'valid'],
  ['SQL metacharacters', leaveRow({ reason: "'; DROP TABLE leave_requests; --", employee_no: "E001' OR '1'='1" }), 'valid'],
  ['employee id longer than 128', leaveRow({ employee_no: 'E'.repeat(129) }), /fields\.user_id \(column employee_no\): longer than 128 characters/],
  ['key longer than 191', leaveRow({ id: 'k'.repeat(200) }), /key \(column id\): longer than 191 characters/],
  ['numbers as strings', leaveRow({ id: '101', duration: '8.0' }), 'valid'],
  ['epoch seconds', leaveRow({ start_at: 1772413200, end_at: 1772445600 }), 'valid'],
  ['bigint-like string key', leaveRow({ id: '9223372036854775807' }), 'valid'],
  ['three problems at once', leaveRow({ employee_no: null, leave_type_code: 'XYZ', start_at: '2026-02-30 09:00:00' }), /(?=.*user_id)(?=.*XYZ)(?=.*2026-02-30)/s],
  ['overtime category unknown', { id: 1, employee_no: 'E1', start_at: '2026-03-07 09:00:00', end_at: '2026-03-07 12:00:00', day_type: 'MOONDAY', compensation: 'PAY', hours: 3 }, /fields\.category \(column day_type\): unknown value "MOONDAY"/, { kind: 'overtime' }],
  ['trip unknown transport', { id: 1, employee_no: 'E1', start_at: '2026-03-10 00:00:00', end_at: '2026-03-11 00:00:00', reason: 'x', transport: 'ROCKET', applied_at: '2026-03-01 09:00:00', approved_at: '2026-03-01 10:00:00' }, /fields\.transportation: unknown value "ROCKET"/, { kind: 'trip' }],
  ['trip missing approve time', { id: 1, employee_no: 'E1', start_at: '2026-03-10 00:00:00', end_at: '2026-03-11 00:00:00', reason: 'x', applied_at: '2026-03-01 09:00:00', approved_at: null }, /fields\.approve_pass_time \(column approved_at\): is empty/, { kind: 'trip' }],
  ['out unknown type', { id: 1, employee_no: 'E1', out_type: 'SPA', start_at: '2026-03-02 14:00:00', end_at: '2026-03-02 16:00:00', reason: 'x', is_deleted: 0 }, /unknown type code "SPA" \(not in kinds\.out\.types\)/, { kind: 'out' }],
  ['whitespace-only reason without default (out)', { id: 1, employee_no: 'E1', out_type: 'CLIENT', start_at: '2026-03-02 14:00:00', end_at: '2026-03-02 16:00:00', reason: '   ', is_deleted: 0 }, /fields\.reason \(column reason\): is empty/, { kind: 'out' }],
];

describe('mapping: hostile and broken rows', () => {
  // Rows are padded to four values: jest hands a test function with more parameters than
  // the row has values a `done` callback instead.
  it.each(hostile.map((c) => [c[0], c[1], c[2], c[3] ?? {}] as const))('%s', (_name, row, expected, opts) => {
    const m = mapRow(opts?.kind ?? 'leave', k(opts?.kind ?? 'leave'), row, { ...ctx, sourceTimeZone: opts?.zone ?? ctx.sourceTimeZone });
    if (expected === 'valid') {
      const v = valid(m);
      const item = (v.request.leaves ?? v.request.outs ?? v.request.overtime_works ?? v.request.trips)![0] as Record<string, unknown>;
      if (typeof item.reason === 'string') {
        expect(Array.from(item.reason).length).toBeLessThanOrEqual(1000);
        expect(item.reason).not.toMatch(/[\u0000-\u0008\u001b]/);
      }
      return;
    }
    expect(m.outcome).toBe('invalid');
    if (m.outcome === 'invalid') expect(m.reasons.join(' | ')).toMatch(expected);
  });

  it('a row with three problems yields three reasons', () => {
    const m = mapRow('leave', k('leave'), leaveRow({ employee_no: null, leave_type_code: 'XYZ', start_at: '2026-02-30 09:00:00' }), ctx);
    expect(m.outcome === 'invalid' && m.reasons.length).toBe(3);
  });

  it('a 1 MB reason is cut to 1000 characters, never split inside a character', () => {
    const m = valid(mapRow('leave', k('leave'), leaveRow({ reason: '假😷'.repeat(512 * 1024) }), ctx));
    const reason = m.request.leaves![0]!.reason;
    expect(Array.from(reason)).toHaveLength(1000);
    expect(reason.endsWith('…')).toBe(true);
    expect(reason).not.toMatch(/[\uD800-\uDBFF]…$/);
  });

  it('keeps emoji whole and SQL text verbatim', () => {
    const m = valid(mapRow('leave', k('leave'), leaveRow({ reason: "病 😷 '; DROP TABLE x; --" }), ctx));
    expect(m.request.leaves?.[0]?.reason).toBe("病 😷 '; DROP TABLE x; --");
  });
});

describe('version hash and idempotency key', () => {
  it('the version is stable for equal content and changes with any sent field', () => {
    const a = valid(mapRow('leave', k('leave'), leaveRow(), ctx));
    const b = valid(mapRow('leave', k('leave'), leaveRow({ updated_at: '2027-01-01 00:00:00' }), ctx));
    const c = valid(mapRow('leave', k('leave'), leaveRow({ reason: '看病' }), ctx));
    expect(a.version).toBe(b.version);
    expect(a.version).not.toBe(c.version);
    expect(versionHash({ b: 1, a: [1, { y: 2, x: 1 }] })).toBe(versionHash({ a: [1, { x: 1, y: 2 }], b: 1 }));
  });

  it('keys are deterministic, ASCII, ≤ 64 characters, and distinct across kind, key, version and generation', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      for (const kind of ['leave', 'overtime'] as const) {
        const key = idempotencyKey({ namespace: 'fas', kind, sourceKey: String(i), version: `v${i % 7}`, generation: i % 3 });
        expect(key).toMatch(/^[a-z0-9-]{1,64}$/);
        expect(key).toBe(idempotencyKey({ namespace: 'fas', kind, sourceKey: String(i), version: `v${i % 7}`, generation: i % 3 }));
        seen.add(key);
      }
    }
    expect(seen.size).toBe(4000);
    expect(idempotencyKey({ namespace: 'fas', kind: 'leave', sourceKey: '1', version: 'v', generation: 0 })).not.toBe(
      idempotencyKey({ namespace: 'fas', kind: 'leave', sourceKey: '1', version: 'v', generation: 1 }),
    );
  });
});
