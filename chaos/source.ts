import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import { KINDS, type Kind } from '../src/kinds.js';
import { cancelRows, createSampleSchema, sampleNow, seedSample, softDeleteRows, sqlTime, touchRows } from '../src/sample/index.js';
import { migrateLatest } from '../src/state/migrate.js';

/*
 * The legacy HR database of a chaos run: the sample schema seeded with N records of the four
 * kinds, and a "churn" that keeps changing it the way an HR application does (new requests,
 * edits, cancellations, soft and hard deletes, late approvals). The churn depends only on its
 * seeded random source, never on the worker, so the source's final state is the same for a
 * given seed however the crashes fell.
 */

export const SOURCE_TABLES: Readonly<Record<Kind, string>> = Object.freeze({
  leave: 'leave_requests',
  overtime: 'overtime_requests',
  trip: 'trip_requests',
  out: 'out_requests',
});

/** Share of each kind among the seeded records (the rest are outs). */
const KIND_SHARE: Readonly<Record<Kind, number>> = Object.freeze({ leave: 0.4, overtime: 0.2, trip: 0.15, out: 0.25 });

export interface SeededSource {
  readonly employees: number;
  readonly counts: Readonly<Record<Kind, number>>;
  /** Effective dates of the seeded records: [from, to], yyyy-MM-dd. */
  readonly from: string;
  readonly to: string;
}

/**
 * The sample schema with `records` rows over the four kinds, effective dates from 30 days ago
 * to 30 days ahead (so lookups hit both the past and beyond Feishu's today + 1 query cap),
 * and migrated state tables.
 */
export async function seedSource(db: Knex, o: { records: number; seed: number; now?: DateTime }): Promise<SeededSource> {
  const leaves = Math.round(o.records * KIND_SHARE.leave);
  const overtime = Math.round(o.records * KIND_SHARE.overtime);
  const trips = Math.round(o.records * KIND_SHARE.trip);
  const outs = Math.max(0, o.records - leaves - overtime - trips);
  const employees = Math.max(10, Math.round(o.records / 15));
  const start = DateTime.utc().startOf('day').minus({ days: 30 });
  const days = 60;
  await createSampleSchema(db);
  // updated_at an hour back: after the first pass the lookback window holds only the churn.
  await seedSample(db, { employees, leaves, overtime, trips, outs, seed: o.seed, startDate: start.toISODate()!, days, now: o.now ?? sampleNow().minus({ hours: 1 }) });
  await migrateLatest(db, 'attendance_sync_');
  return {
    employees,
    counts: { leave: leaves, overtime, trip: trips, out: outs },
    from: start.minus({ days: 10 }).toISODate()!,
    to: start.plus({ days: days + 12 }).toISODate()!,
  };
}

export const CHURN_OPS = Object.freeze(['insert', 'edit', 'cancel', 'softDelete', 'approve', 'hardDelete', 'touch'] as const);
export type ChurnOp = (typeof CHURN_OPS)[number];
export type ChurnCounts = Record<ChurnOp, number>;

const OP_SHARE: Readonly<Record<ChurnOp, number>> = Object.freeze({ insert: 0.28, edit: 0.24, cancel: 0.14, softDelete: 0.08, approve: 0.12, hardDelete: 0.04, touch: 0.1 });

export function emptyChurnCounts(): ChurnCounts {
  return { insert: 0, edit: 0, cancel: 0, softDelete: 0, approve: 0, hardDelete: 0, touch: 0 };
}

function pickWeighted<T extends string>(rng: () => number, weights: Readonly<Record<T, number>>): T {
  const entries = Object.entries(weights) as Array<[T, number]>;
  const total = entries.reduce((a, [, w]) => a + w, 0);
  let r = rng() * total;
  for (const [k, w] of entries) {
    if (r < w) return k;
    r -= w;
  }
  return entries[entries.length - 1]![0];
}

function sample<T>(rng: () => number, list: readonly T[], n: number): T[] {
  const copy = [...list];
  const out: T[] = [];
  while (out.length < n && copy.length > 0) out.push(copy.splice(Math.floor(rng() * copy.length), 1)[0]!);
  return out;
}

/** A zone-less source timestamp (any driver's text form) as a UTC DateTime of the same wall time. */
function wallTime(v: unknown): DateTime {
  const dt = DateTime.fromSQL(String(v).replace('T', ' ').replace(/Z$/, ''), { zone: 'UTC' });
  if (!dt.isValid) throw new Error(`not a timestamp: ${String(v)}`);
  return dt;
}

function notDeleted(kind: Kind, q: Knex.QueryBuilder): Knex.QueryBuilder {
  return kind === 'out' ? q.where('is_deleted', 0) : q.whereNull('deleted_at');
}

/** Keeps the source changing; `batch` applies one seeded mix of changes and says what it did. */
export class SourceChurn {
  private constructor(
    private readonly db: Knex,
    private readonly rng: () => number,
    private readonly nextId: Record<Kind, number>,
    private readonly employees: number,
    private readonly kindShare: Readonly<Record<Kind, number>>,
  ) {}

  static async open(db: Knex, rng: () => number, seeded: SeededSource): Promise<SourceChurn> {
    const next = {} as Record<Kind, number>;
    for (const kind of KINDS) {
      const row = (await db(SOURCE_TABLES[kind]).max({ m: 'id' }).first()) as { m: number | string | null } | undefined;
      next[kind] = Number(row?.m ?? 0) + 1;
    }
    const total = Object.values(seeded.counts).reduce((a, b) => a + b, 0) || 1;
    const share = Object.fromEntries(KINDS.map((k) => [k, Math.max(0.05, seeded.counts[k] / total)])) as Record<Kind, number>;
    return new SourceChurn(db, rng, next, seeded.employees, share);
  }

  /**
   * Apply `changes` changes, kinds and operations drawn at random (operations weighted by
   * `ops`, default: all of them); `label` marks the reasons of new and edited rows.
   */
  async batch(changes: number, label: string, ops: Partial<Record<ChurnOp, number>> = OP_SHARE): Promise<ChurnCounts> {
    const plan = new Map<string, number>();
    for (let i = 0; i < changes; i++) {
      const key = `${pickWeighted(this.rng, this.kindShare)}:${pickWeighted(this.rng, ops as Record<ChurnOp, number>)}`;
      plan.set(key, (plan.get(key) ?? 0) + 1);
    }
    const done = emptyChurnCounts();
    // A fixed order (not the map's insertion order) keeps the random draws reproducible.
    for (const kind of KINDS) {
      for (const op of CHURN_OPS) {
        const n = plan.get(`${kind}:${op}`) ?? 0;
        if (n > 0) done[op] += await this.apply(kind, op, n, label);
      }
    }
    return done;
  }

  private async candidates(kind: Kind, op: ChurnOp): Promise<number[]> {
    const table = SOURCE_TABLES[kind];
    let q = this.db(table).select('id').orderBy('id');
    if (op === 'edit' || op === 'cancel' || op === 'softDelete' || op === 'touch') q = notDeleted(kind, q.where('status', 'approved'));
    else if (op === 'approve') q = notDeleted(kind, q.whereNot('status', 'approved'));
    const rows = (await q) as Array<{ id: number | string }>;
    return rows.map((r) => Number(r.id));
  }

  private async apply(kind: Kind, op: ChurnOp, n: number, label: string): Promise<number> {
    const table = SOURCE_TABLES[kind];
    if (op === 'insert') return this.insert(kind, n, label);
    const ids = sample(this.rng, await this.candidates(kind, op), n);
    if (ids.length === 0) return 0;
    switch (op) {
      case 'edit': {
        // A new version Feishu must see: moved by whole half-hours, with a new reason.
        const rows = (await this.db(table).whereIn('id', ids).orderBy('id')) as Array<Record<string, unknown>>;
        for (const row of rows) {
          const minutes = 30 * (1 + Math.floor(this.rng() * 4));
          await touchRows(this.db, table, [Number(row.id)], {
            start_at: sqlTime(wallTime(row.start_at).plus({ minutes })),
            end_at: sqlTime(wallTime(row.end_at).plus({ minutes })),
            reason: `改期 ${label}`,
          });
        }
        return rows.length;
      }
      case 'cancel':
        await cancelRows(this.db, table, ids);
        return ids.length;
      case 'softDelete':
        await softDeleteRows(this.db, table, ids);
        return ids.length;
      case 'approve':
        await touchRows(this.db, table, ids, { status: 'approved' });
        return ids.length;
      case 'hardDelete':
        // Invisible to the updated_at cursor: only a rescan finds these.
        await this.db(table).whereIn('id', ids).delete();
        return ids.length;
      case 'touch':
        // updated_at moves, content does not: re-read, and nothing may be sent.
        await touchRows(this.db, table, ids, {});
        return ids.length;
    }
    return 0;
  }

  /** New requests: copies of existing rows of the kind, moved by up to a week, another employee. */
  private async insert(kind: Kind, n: number, label: string): Promise<number> {
    const table = SOURCE_TABLES[kind];
    const pool = (await this.db(table).select('id').orderBy('id').limit(2000)) as Array<{ id: number | string }>;
    if (pool.length === 0) return 0;
    const now = sqlTime(sampleNow());
    const rows: Array<Record<string, unknown>> = [];
    for (let i = 0; i < n; i++) {
      const srcId = Number(pool[Math.floor(this.rng() * pool.length)]!.id);
      const src = (await this.db(table).where({ id: srcId }).first()) as Record<string, unknown>;
      const days = Math.floor(this.rng() * 15) - 7;
      const row: Record<string, unknown> = { ...src, id: this.nextId[kind]++, employee_id: 1 + Math.floor(this.rng() * this.employees) };
      for (const col of ['start_at', 'end_at', 'applied_at', 'approved_at']) {
        if (row[col] !== undefined && row[col] !== null) row[col] = sqlTime(wallTime(row[col]).plus({ days }));
      }
      row.status = this.rng() < 0.85 ? 'approved' : 'pending';
      row.reason = `新申请 ${label}`;
      if (kind === 'out') row.is_deleted = 0;
      else row.deleted_at = null;
      if ('created_at' in row) row.created_at = now;
      row.updated_at = now;
      rows.push(row);
    }
    await this.db.batchInsert(table, rows, 200);
    return rows.length;
  }
}
