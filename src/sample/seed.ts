import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import { seededRandom } from '../random.js';

/** Leave types of the sample schema (code → names, unit). */
export const SAMPLE_LEAVE_TYPES = Object.freeze([
  { code: 'ANNUAL', name_zh: '年假', name_en: 'Annual leave', unit: 'DAY' },
  { code: 'SICK', name_zh: '病假', name_en: 'Sick leave', unit: 'HALF_DAY' },
  { code: 'PERSONAL', name_zh: '事假', name_en: 'Personal leave', unit: 'HOUR' },
  { code: 'MARRIAGE', name_zh: '婚假', name_en: 'Marriage leave', unit: 'DAY' },
]);

const SURNAMES = ['王', '李', '张', '刘', '陈', '杨', '赵', '黄', '周', '吴'];
const GIVEN = ['伟', '芳', '娜', '敏', '静', '磊', '洋', '勇', '艳', '杰', '涛', '明'];
const LEAVE_REASONS = ['回老家探亲', '身体不适，去医院', '孩子生病需要照顾', '办理个人事务', '结婚', '家里有事'];
const OT_REASONS = ['推进项目进度', '版本上线', '客户紧急需求', null];
const TRIP_REASONS = ['客户现场支持', '参加行业会议', '培训', '供应商审核'];
const OUT_REASONS = ['拜访客户', '去银行办理业务', '去税务局'];

/** The sample application keeps local wall time in Asia/Shanghai (as the example configs say). */
export const SAMPLE_TIME_ZONE = 'Asia/Shanghai';

/** "Now" as the sample application writes it into updated_at. */
export function sampleNow(): DateTime {
  return DateTime.now().setZone(SAMPLE_TIME_ZONE);
}

/** Zone-less timestamp text, microseconds always written so text columns sort correctly. */
export function sqlTime(dt: DateTime): string {
  return `${dt.toFormat('yyyy-MM-dd HH:mm:ss')}.${String(dt.millisecond * 1000).padStart(6, '0')}`;
}

export interface SeedOptions {
  employees?: number;
  leaves?: number;
  overtime?: number;
  trips?: number;
  outs?: number;
  seed?: number;
  /** First day records start on (yyyy-MM-dd); records spread over `days` days. */
  startDate?: string;
  days?: number;
  /** The application's "now" written into updated_at. */
  now?: DateTime;
  /** Share of rows that are approved (the rest: pending, cancelled, rejected, deleted). */
  approvedShare?: number;
  batchSize?: number;
}

export interface SeedResult {
  employees: number;
  leaves: number;
  overtime: number;
  trips: number;
  outs: number;
}

async function insertBatched(db: Knex, table: string, count: number, make: (i: number) => Record<string, unknown>, batch: number): Promise<void> {
  for (let start = 1; start <= count; start += batch) {
    const rows: Record<string, unknown>[] = [];
    for (let i = start; i < start + batch && i <= count; i++) rows.push(make(i));
    await db.batchInsert(table, rows, rows.length);
  }
}

/**
 * Fill the sample schema with deterministic, realistic data. Rows are generated and inserted
 * batch by batch, so a million rows need no more memory than a thousand.
 */
export async function seedSample(db: Knex, o: SeedOptions = {}): Promise<SeedResult> {
  const r = seededRandom(o.seed ?? 7);
  const employees = o.employees ?? 20;
  const days = o.days ?? 60;
  const start = DateTime.fromISO(o.startDate ?? '2026-03-02', { zone: 'UTC' });
  const now = o.now ?? sampleNow();
  const batch = o.batchSize ?? 500;
  const approved = o.approvedShare ?? 0.85;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)]!;
  const day = () => start.plus({ days: Math.floor(r() * days) });
  const status = () => {
    const x = r();
    if (x < approved) return 'approved';
    return pick(['pending', 'cancelled', 'rejected']);
  };
  const updated = sqlTime(now);

  await insertBatched(
    db,
    'employees',
    employees,
    (i) => ({ id: i, employee_no: `E${String(i).padStart(5, '0')}`, name: pick(SURNAMES) + pick(GIVEN) + (r() < 0.5 ? pick(GIVEN) : ''), feishu_user_id: null, dept: pick(['研发部', '销售部', '人事部', '财务部']), active: true }),
    batch,
  );
  if ((await db('leave_types').count({ n: '*' }).first())?.n == 0) await db('leave_types').insert([...SAMPLE_LEAVE_TYPES]);

  const leaves = o.leaves ?? 60;
  await insertBatched(
    db,
    'leave_requests',
    leaves,
    (i) => {
      const type = pick(SAMPLE_LEAVE_TYPES);
      const d = day();
      let s: DateTime;
      let e: DateTime;
      let duration: number;
      if (type.unit === 'HOUR') {
        const hours = 1 + Math.floor(r() * 4);
        s = d.set({ hour: 9 + Math.floor(r() * 4) });
        e = s.plus({ hours });
        duration = hours;
      } else if (type.unit === 'HALF_DAY') {
        const halves = 1 + Math.floor(r() * 3);
        s = d.set({ hour: r() < 0.5 ? 9 : 13 });
        e = s.plus({ hours: halves * 4 + (halves > 1 ? 16 * Math.floor(halves / 2) : 0) });
        duration = halves * 0.5;
      } else {
        const n = 1 + Math.floor(r() * 3);
        s = d.set({ hour: 9 });
        e = d.plus({ days: n - 1 }).set({ hour: 18 });
        duration = n;
      }
      return {
        id: i,
        employee_id: 1 + Math.floor(r() * employees),
        leave_type_code: type.code,
        start_at: sqlTime(s),
        end_at: sqlTime(e),
        duration,
        reason: pick(LEAVE_REASONS),
        status: status(),
        deleted_at: r() < 0.03 ? updated : null,
        created_at: updated,
        updated_at: updated,
      };
    },
    batch,
  );

  const overtime = o.overtime ?? 30;
  await insertBatched(
    db,
    'overtime_requests',
    overtime,
    (i) => {
      const s = day().set({ hour: 18 + Math.floor(r() * 3) });
      const hours = 1 + Math.floor(r() * 4);
      return {
        id: i,
        employee_id: 1 + Math.floor(r() * employees),
        start_at: sqlTime(s),
        end_at: sqlTime(s.plus({ hours })),
        hours,
        day_type: pick(['WORKDAY', 'WORKDAY', 'RESTDAY', 'HOLIDAY']),
        compensation: pick(['LIEU', 'PAY', 'NONE']),
        reason: pick(OT_REASONS),
        status: status(),
        deleted_at: r() < 0.03 ? updated : null,
        updated_at: updated,
      };
    },
    batch,
  );

  const trips = o.trips ?? 20;
  await insertBatched(
    db,
    'trip_requests',
    trips,
    (i) => {
      const s = day();
      const n = 1 + Math.floor(r() * 4);
      const applied = s.minus({ days: 3 }).set({ hour: 10 });
      return {
        id: i,
        employee_id: 1 + Math.floor(r() * employees),
        start_at: sqlTime(s.set({ hour: 0 })),
        end_at: sqlTime(s.plus({ days: n - 1 }).set({ hour: 23, minute: 59, second: 59 })),
        destination: pick(['6863333418483058189', '6863333418483058190,6863333418483058191']),
        transport: pick(['PLANE', 'TRAIN', 'PLANE,TRAIN', 'CAR', 'HSR']),
        round_trip: r() < 0.7,
        reason: pick(TRIP_REASONS),
        applied_at: sqlTime(applied),
        approved_at: sqlTime(applied.plus({ hours: 5 })),
        status: status(),
        deleted_at: r() < 0.03 ? updated : null,
        updated_at: updated,
      };
    },
    batch,
  );

  const outs = o.outs ?? 30;
  await insertBatched(
    db,
    'out_requests',
    outs,
    (i) => {
      const s = day().set({ hour: 9 + Math.floor(r() * 6) });
      const hours = 1 + Math.floor(r() * 3);
      return {
        id: i,
        employee_id: 1 + Math.floor(r() * employees),
        out_type: pick(['CLIENT', 'BANK', 'GOV']),
        start_at: sqlTime(s),
        end_at: sqlTime(s.plus({ hours })),
        hours,
        reason: pick(OUT_REASONS),
        status: status(),
        is_deleted: r() < 0.03 ? 1 : 0,
        updated_at: updated,
      };
    },
    batch,
  );
  return { employees, leaves, overtime, trips, outs };
}

/** Like the application: every change moves updated_at. */
export async function touchRows(db: Knex, table: string, ids: readonly number[], changes: Record<string, unknown>, now = sampleNow()): Promise<void> {
  if (ids.length === 0) return;
  await db(table)
    .whereIn('id', ids as number[])
    .update({ ...changes, updated_at: sqlTime(now) });
}

export async function cancelRows(db: Knex, table: string, ids: readonly number[], now = sampleNow()): Promise<void> {
  await touchRows(db, table, ids, { status: 'cancelled' }, now);
}

export async function softDeleteRows(db: Knex, table: string, ids: readonly number[], now = sampleNow()): Promise<void> {
  await touchRows(db, table, ids, table === 'out_requests' ? { is_deleted: 1 } : { deleted_at: sqlTime(now) }, now);
}
