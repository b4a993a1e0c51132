import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import { dialectFor } from '../src/db/dialect.js';
import type { LedgerEntry } from '../src/emulator/index.js';
import { realNow } from './clock.js';

/*
 * The legacy HR database of the model test: leave (a query with joins: the employee number
 * from `employees`, a note from `leave_notes` that overrides the reason) and overtime (a
 * table joined to `employees`). The business key `id` is nullable and a surrogate `rid` is the
 * primary key, so a history can insert a row without a key, as a view over a sloppy join can
 * return one. The harness keeps every version of every row it wrote: the oracle tells an
 * approval that should have been revoked (an earlier version of a row) from one whose content
 * never existed in the source.
 */

export const MODEL_KINDS = ['leave', 'overtime'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];
export const TABLE: Readonly<Record<ModelKind, string>> = { leave: 'leave_requests', overtime: 'overtime_requests' };
export const EMPLOYEES = ['E001', 'E002', 'E003', 'E004'] as const;
export const ZONE = 'Asia/Shanghai';
export const SOURCE_TABLES = ['leave_notes', 'leave_requests', 'overtime_requests', 'leave_types', 'employees'] as const;

function ts(db: Knex, tb: Knex.CreateTableBuilder, name: string): Knex.ColumnBuilder {
  const d = dialectFor(db).name;
  return tb.specificType(name, d === 'pg' ? 'timestamp(6)' : d === 'mysql' ? 'datetime(6)' : 'text');
}

export async function createModelSchema(db: Knex): Promise<void> {
  for (const t of SOURCE_TABLES) await db.schema.dropTableIfExists(t);
  await db.schema.createTable('employees', (tb) => {
    tb.integer('id').primary();
    tb.string('employee_no', 20).notNullable();
  });
  await db.schema.createTable('leave_types', (tb) => {
    tb.string('code', 16).primary();
    tb.string('unit', 10).notNullable();
  });
  await db.schema.createTable('leave_requests', (tb) => {
    tb.increments('rid').primary();
    tb.integer('id').nullable();
    tb.integer('employee_id').notNullable();
    tb.string('leave_type_code', 16).notNullable();
    ts(db, tb, 'start_at').notNullable();
    ts(db, tb, 'end_at').notNullable();
    tb.decimal('duration', 8, 2).notNullable();
    tb.text('reason').nullable();
    tb.string('status', 16).notNullable();
    ts(db, tb, 'deleted_at').nullable();
    ts(db, tb, 'updated_at').notNullable();
    tb.index(['updated_at', 'id']);
  });
  await db.schema.createTable('leave_notes', (tb) => {
    tb.increments('nid').primary();
    tb.integer('leave_id').notNullable();
    tb.string('note', 100).notNullable();
  });
  await db.schema.createTable('overtime_requests', (tb) => {
    tb.increments('rid').primary();
    tb.integer('id').nullable();
    tb.integer('employee_id').notNullable();
    ts(db, tb, 'start_at').notNullable();
    ts(db, tb, 'end_at').notNullable();
    tb.decimal('hours', 6, 2).notNullable();
    tb.string('day_type', 10).notNullable();
    tb.string('compensation', 10).notNullable();
    tb.text('reason').nullable();
    tb.string('status', 16).notNullable();
    ts(db, tb, 'deleted_at').nullable();
    ts(db, tb, 'updated_at').notNullable();
    tb.index(['updated_at', 'id']);
  });
  await db('employees').insert(EMPLOYEES.map((no, i) => ({ id: i + 1, employee_no: no })));
  await db('leave_types').insert([{ code: 'ANNUAL', unit: 'HOUR' }]);
}

/** Empty the request tables between histories (employees and types stay). */
export async function clearModelSource(db: Knex): Promise<void> {
  for (const t of ['leave_notes', 'leave_requests', 'overtime_requests']) await db(t).delete();
}

/** The `kinds` section of the model's configuration. */
export function modelKinds(): Record<string, unknown> {
  const status = { column: 'status', approved: ['approved'], revoked: ['cancelled', 'rejected'] };
  return {
    leave: {
      source: {
        query: `SELECT r.id, e.employee_no, r.leave_type_code, t.unit AS unit_code, r.duration AS duration_hours,
                       r.start_at, r.end_at, COALESCE(n.note, r.reason) AS reason, r.status, r.deleted_at, r.updated_at
                  FROM leave_requests r
                  LEFT JOIN employees e ON e.id = r.employee_id
                  LEFT JOIN leave_types t ON t.code = r.leave_type_code
                  LEFT JOIN leave_notes n ON n.leave_id = r.id`,
      },
      key: 'id',
      cursor: { mode: 'updated_at', column: 'updated_at' },
      effective_date: 'start_at',
      status,
      deleted: { column: 'deleted_at' },
      fields: {
        user_id: 'employee_no',
        start_time: 'start_at',
        end_time: 'end_at',
        type: 'leave_type_code',
        unit: { column: 'unit_code', map: { DAY: 1, HALF_DAY: 3, HOUR: 2 } },
        interval: { column: 'duration_hours', unit: 'hours' },
        reason: { column: 'reason', default: '无' },
      },
      types: { ANNUAL: { uniq_id: 'ANNUAL', names: { ch: '年假', en: 'Annual leave' } } },
    },
    overtime: {
      source: { query: 'SELECT o.*, e.employee_no FROM overtime_requests o LEFT JOIN employees e ON e.id = o.employee_id' },
      key: 'id',
      cursor: { mode: 'updated_at', column: 'updated_at' },
      effective_date: 'start_at',
      status,
      deleted: { column: 'deleted_at' },
      fields: {
        user_id: 'employee_no',
        start_time: 'start_at',
        end_time: 'end_at',
        unit: { value: 2 },
        category: { column: 'day_type', map: { WORKDAY: 1, RESTDAY: 2, HOLIDAY: 3 } },
        type: { column: 'compensation', map: { NONE: 0, LIEU: 1, PAY: 2 } },
        duration: { column: 'hours', unit: 'hours' },
        reason: 'reason',
      },
    },
  };
}

const WALL = 'yyyy-MM-dd HH:mm:ss';

function wall(dt: DateTime): string {
  return dt.toFormat(WALL);
}

/** One source row as the harness last wrote it, with every content it ever had. */
export interface ModelRow {
  readonly kind: ModelKind;
  readonly rid: number;
  readonly id: number | null;
  emp: number;
  start: DateTime;
  end: DateTime;
  status: 'approved' | 'pending' | 'cancelled';
  deleted: boolean;
  /** Gone from the table (DELETE). */
  gone: boolean;
  /** Changed in a way the updated_at cursor cannot see (hard delete, a join multiplying it). */
  hidden: boolean;
  /** Stamped in 2099. */
  future: boolean;
  readonly versions: Set<string>;
}

export function contentKey(kind: string, user: string, start: string, end: string): string {
  return `${kind}|${user}|${start}|${end}`;
}

function rowContent(r: ModelRow): string {
  return contentKey(r.kind, EMPLOYEES[r.emp]!, wall(r.start), wall(r.end));
}

/** Writes to the source, and remembers what it wrote. */
export class ModelSource {
  readonly rows: ModelRow[] = [];
  private nextId: Record<ModelKind, number> = { leave: 1, overtime: 1 };
  private lastStamp = 0;
  /** Midnight of the first day of the history, in the source's zone (the real clock). */
  readonly base: DateTime;

  constructor(private readonly db: Knex) {
    this.base = DateTime.fromMillis(realNow(), { zone: ZONE }).startOf('day');
  }

  /**
   * updated_at as the HR application writes it: the source's own clock (never the jumped
   * one), strictly increasing, so a change is never stamped at or below a watermark that has
   * already passed it (what the lookback exists for is not under test here).
   */
  private stamp(): string {
    const now = Math.max(realNow(), this.lastStamp + 1);
    this.lastStamp = now;
    const dt = DateTime.fromMillis(now, { zone: ZONE });
    return `${dt.toFormat(WALL)}.${String(dt.millisecond * 1000).padStart(6, '0')}`;
  }

  /** Rows a step may address: keyed, still in the table. */
  live(kind: ModelKind): ModelRow[] {
    return this.rows.filter((r) => r.kind === kind && !r.gone && r.id !== null);
  }

  pick(kind: ModelKind, ref: number, want?: (r: ModelRow) => boolean): ModelRow | undefined {
    const list = this.live(kind).filter(want ?? (() => true));
    return list.length === 0 ? undefined : list[ref % list.length];
  }

  async insert(kind: ModelKind, o: { emp: number; day: number; hour: number; hours: number; approved: boolean; nullKey?: boolean }): Promise<ModelRow> {
    const id = o.nullKey ? null : this.nextId[kind]++;
    const start = this.base.plus({ days: o.day, hours: o.hour });
    const end = start.plus({ hours: o.hours });
    const row: Record<string, unknown> = {
      id,
      employee_id: o.emp + 1,
      start_at: wall(start),
      end_at: wall(end),
      reason: `r${id ?? 'null'}`,
      status: o.approved ? 'approved' : 'pending',
      deleted_at: null,
      updated_at: this.stamp(),
    };
    if (kind === 'leave') Object.assign(row, { leave_type_code: 'ANNUAL', duration: o.hours });
    else Object.assign(row, { hours: o.hours, day_type: 'WORKDAY', compensation: 'PAY' });
    const [rid] = (await this.db(TABLE[kind]).insert(row, ['rid'])) as Array<{ rid: number } | number>;
    const m: ModelRow = {
      kind,
      rid: typeof rid === 'object' ? Number(rid.rid) : Number(rid),
      id,
      emp: o.emp,
      start,
      end,
      status: o.approved ? 'approved' : 'pending',
      deleted: false,
      gone: false,
      hidden: false,
      future: false,
      versions: new Set(),
    };
    if (id !== null) m.versions.add(rowContent(m));
    this.rows.push(m);
    return m;
  }

  private async update(r: ModelRow, changes: Record<string, unknown>, stamp: string = this.stamp()): Promise<void> {
    await this.db(TABLE[r.kind]).where({ rid: r.rid }).update({ ...changes, updated_at: stamp });
  }

  async editTimes(r: ModelRow, minutes: number): Promise<void> {
    r.start = r.start.plus({ minutes });
    r.end = r.end.plus({ minutes });
    r.versions.add(rowContent(r));
    await this.update(r, { start_at: wall(r.start), end_at: wall(r.end) });
  }

  async setStatus(r: ModelRow, status: ModelRow['status']): Promise<void> {
    r.status = status;
    await this.update(r, { status });
  }

  async hardDelete(r: ModelRow): Promise<void> {
    r.gone = true;
    r.hidden = true;
    await this.db(TABLE[r.kind]).where({ rid: r.rid }).delete();
    if (r.kind === 'leave' && r.id !== null) await this.db('leave_notes').where({ leave_id: r.id }).delete();
  }

  /** A typo or a fast app-server clock: updated_at in 2099. */
  async futureUpdatedAt(r: ModelRow): Promise<void> {
    r.future = true;
    r.start = r.start.plus({ minutes: 30 });
    r.end = r.end.plus({ minutes: 30 });
    r.versions.add(rowContent(r));
    await this.update(r, { start_at: wall(r.start), end_at: wall(r.end) }, '2099-01-01 08:00:00.000000');
  }

  /** Two notes for one leave: the query returns its key twice, with different reasons. */
  async duplicateJoin(r: ModelRow): Promise<void> {
    r.hidden = true;
    await this.db('leave_notes').insert([
      { leave_id: r.id, note: `note a ${r.id}` },
      { leave_id: r.id, note: `note b ${r.id}` },
    ]);
  }

  /** The operator repairs the source: the extra join rows go. */
  async repairJoins(): Promise<number> {
    return Number(await this.db('leave_notes').delete());
  }
}

export interface ContentVerdict {
  /** Approved in the source, no approval with its content in Feishu. */
  missing: number;
  /** More approvals with a content than approved source rows have it. */
  duplicated: number;
  /** Approved in Feishu with the content of an earlier version, or of a cancelled, deleted or gone row. */
  notRevoked: number;
  /** Approved in Feishu with a content no keyed source row ever had. */
  unexpected: number;
  examples: string[];
}

export function verdictTotal(v: ContentVerdict): number {
  return v.missing + v.duplicated + v.notRevoked + v.unexpected;
}

function text(v: unknown): string {
  if (v instanceof Date) return DateTime.fromJSDate(v, { zone: 'UTC' }).toFormat(WALL);
  return String(v ?? '').replace('T', ' ').slice(0, 19);
}

/**
 * The oracle, by content (kind, user, start, end) — never by idempotent_id: the source's
 * approved, keyed, not deleted rows against the approved items in the emulator's ledger.
 * `excuseHidden` leaves out every content of rows the harness marked hidden (a verdict taken
 * before the rescan: such changes are invisible to the cursor). Rows stamped in 2099 are
 * left out of both verdicts: whether they sync is their own question; the step exists for
 * what it does to every other row.
 */
export async function judge(db: Knex, model: ModelSource, ledger: readonly LedgerEntry[], o: { excuseHidden: boolean }): Promise<ContentVerdict> {
  const excused = new Set<string>();
  const ever = new Set<string>();
  for (const r of model.rows) {
    for (const v of r.versions) {
      ever.add(v);
      if (o.excuseHidden && r.hidden) excused.add(v);
    }
  }
  const want = new Map<string, number>();
  for (const kind of MODEL_KINDS) {
    const rows = (await db(`${TABLE[kind]} as r`)
      .leftJoin('employees as e', 'e.id', 'r.employee_id')
      .whereNotNull('r.id')
      .where('r.status', 'approved')
      .whereNull('r.deleted_at')
      .where('r.updated_at', '<', '2099-01-01')
      .select('e.employee_no', 'r.start_at', 'r.end_at')) as Array<{ employee_no: string; start_at: unknown; end_at: unknown }>;
    for (const r of rows) {
      const k = contentKey(kind, r.employee_no, text(r.start_at), text(r.end_at));
      want.set(k, (want.get(k) ?? 0) + 1);
    }
  }
  for (const r of model.rows) if (r.future) for (const v of r.versions) excused.add(v);
  const have = new Map<string, number>();
  for (const e of ledger) {
    if (e.status !== 2) continue;
    const k = contentKey(e.kind, e.userId, String(e.item.start_time), String(e.item.end_time));
    have.set(k, (have.get(k) ?? 0) + 1);
  }
  const v: ContentVerdict = { missing: 0, duplicated: 0, notRevoked: 0, unexpected: 0, examples: [] };
  const note = (s: string) => v.examples.length < 12 && v.examples.push(s);
  for (const k of new Set([...want.keys(), ...have.keys()])) {
    if (excused.has(k)) continue;
    const w = want.get(k) ?? 0;
    const h = have.get(k) ?? 0;
    if (h < w) {
      v.missing += w - h;
      note(`missing: ${k}`);
    } else if (h > w && w > 0) {
      v.duplicated += h - w;
      note(`duplicated ×${h}: ${k}`);
    } else if (h > w && ever.has(k)) {
      v.notRevoked += h;
      note(`not revoked ×${h}: ${k}`);
    } else if (h > w) {
      v.unexpected += h;
      note(`unexpected ×${h}: ${k}`);
    }
  }
  return v;
}
