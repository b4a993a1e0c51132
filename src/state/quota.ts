import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { StateTables } from './tables.js';

/*
 * Feishu's Basic plan caps the calls of all custom apps of a tenant per calendar month
 * (feishu-api.md §3, §11.2); only successful calls count. The worker counts its own successful
 * calls per month in the state database: a lower bound of what Feishu counts (other apps of
 * the tenant share the cap), shown by `status`, the metrics and `backfill --dry-run`.
 *
 * Counting is batched so the sender never waits for a write per call: calls are added in
 * memory and written with one UPDATE every FLUSH_CALLS calls or FLUSH_MS after the first
 * unwritten one, and at the end of every cycle, backfill and shutdown. A crash loses at most
 * the calls of that last unwritten batch (≤ FLUSH_CALLS, about one second at 50 calls/s).
 */

export const QUOTA_FLUSH_CALLS = 50;
export const QUOTA_FLUSH_MS = 1_000;
/** Share of feishu.monthly_quota at which the worker warns, once per process and month. */
export const QUOTA_WARN_FRACTION = 0.8;

export interface QuotaFigures {
  /** Calendar month, yyyy-MM in feishu.time_zone. */
  month: string;
  /** Successful calls this worker made in that month. */
  used: number;
  /** feishu.monthly_quota, or null when not configured. */
  limit: number | null;
}

/** The calendar month of an instant in a zone, yyyy-MM. */
export function quotaMonth(now: number, zone: string): string {
  return DateTime.fromMillis(now, { zone }).toFormat('yyyy-MM');
}

/**
 * The calendar month of instants in one zone, with the month's bounds kept: the sender asks
 * once per call, and only the first call of a month does zone arithmetic.
 */
class MonthOf {
  private from = Infinity;
  private to = -Infinity;
  private month = '';

  constructor(private readonly zone: string) {}

  at(now: number): string {
    if (now < this.from || now >= this.to) {
      const start = DateTime.fromMillis(now, { zone: this.zone }).startOf('month');
      this.from = start.toMillis();
      this.to = start.plus({ months: 1 }).toMillis();
      this.month = start.toFormat('yyyy-MM');
    }
    return this.month;
  }
}

export async function readQuotaUsed(db: Knex, t: StateTables, month: string): Promise<number> {
  if (!(await db.schema.hasTable(t.quota))) return 0;
  return monthCalls(db, t, month);
}

async function monthCalls(db: Knex, t: StateTables, month: string): Promise<number> {
  const row = (await db(t.quota).where({ month }).first('calls')) as { calls?: number | string } | undefined;
  return Number(row?.calls ?? 0);
}

/** The figures for the current month. */
export async function quotaFigures(db: Knex, t: StateTables, opts: { zone: string; limit: number | null; now?: number }): Promise<QuotaFigures> {
  const month = quotaMonth(opts.now ?? Date.now(), opts.zone);
  return { month, used: await readQuotaUsed(db, t, month), limit: opts.limit };
}

/** Add calls to a month's count; returns the new total. */
export async function addQuotaCalls(db: Knex, t: StateTables, month: string, calls: number, now = Date.now()): Promise<number> {
  const bump = () => db(t.quota).where({ month }).update({ calls: db.raw('?? + ?', ['calls', calls]), updated_at: now });
  if ((await bump()) === 0) {
    try {
      await db(t.quota).insert({ month, calls, updated_at: now });
    } catch (err) {
      // Another writer inserted the month first (only one leader writes, so this is rare).
      if ((await bump()) === 0) throw err;
    }
  }
  return monthCalls(db, t, month);
}

export interface QuotaMeterOptions {
  readonly db: Knex;
  readonly t: StateTables;
  readonly zone: string;
  readonly limit: number | null;
  readonly logger: Logger;
  /** Called with the month's total after every write (metrics). */
  readonly onTotal?: (figures: QuotaFigures) => void;
  readonly now?: () => number;
}

/** Counts successful Feishu calls in memory and writes them to the state database in batches. */
export class QuotaMeter {
  private pending = new Map<string, number>();
  private pendingCalls = 0;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private warned = new Set<string>();
  private last: QuotaFigures | null = null;
  private readonly monthOf: MonthOf;

  constructor(private readonly o: QuotaMeterOptions) {
    this.monthOf = new MonthOf(o.zone);
  }

  /** One successful call (synchronous: the caller never waits for the database). */
  record(): void {
    const month = this.monthOf.at((this.o.now ?? Date.now)());
    this.pending.set(month, (this.pending.get(month) ?? 0) + 1);
    this.pendingCalls++;
    if (this.pendingCalls >= QUOTA_FLUSH_CALLS) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), QUOTA_FLUSH_MS);
      this.timer.unref();
    }
  }

  /** The figures of the last write (null before the first). */
  figures(): QuotaFigures | null {
    return this.last;
  }

  /** Write what is counted; concurrent callers wait for the same writes, in order. Never throws. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = [...this.pending];
    this.pending = new Map();
    this.pendingCalls = 0;
    if (batch.length === 0) return this.writing;
    this.writing = this.writing.then(async () => {
      for (const [month, calls] of batch) {
        try {
          const used = await addQuotaCalls(this.o.db, this.o.t, month, calls);
          this.written({ month, used, limit: this.o.limit });
        } catch (err) {
          // Kept for the next write: a state database that is briefly away loses no counts.
          this.pending.set(month, (this.pending.get(month) ?? 0) + calls);
          this.pendingCalls += calls;
          this.o.logger.warn('could not write the count of Feishu calls; trying again with the next batch', { error: describeError(err) });
        }
      }
    });
    return this.writing;
  }

  private written(f: QuotaFigures): void {
    this.last = f;
    this.o.onTotal?.(f);
    if (f.limit !== null && f.used >= f.limit * QUOTA_WARN_FRACTION && !this.warned.has(f.month)) {
      this.warned.add(f.month);
      this.o.logger.warn(`Feishu monthly API quota: ${Math.floor((f.used / f.limit) * 100)} % used by this worker (${f.used} of ${f.limit} calls in ${f.month}); over it Feishu refuses every call until the 1st`, {
        month: f.month,
        used: f.used,
        limit: f.limit,
      });
    }
  }
}
