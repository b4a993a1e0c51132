import type { Knex } from 'knex';
import type { StateTables } from './tables.js';
import { fromJson, toMillis } from './values.js';
import { sanitizeErrorText } from '../log/redact.js';

export type RunType = 'cycle' | 'backfill' | 'retry';
export type RunOutcome = 'running' | 'ok' | 'failed' | 'partial' | 'interrupted' | 'crashed';

export interface Run {
  readonly id: number;
  readonly type: RunType;
  readonly startedAt: number;
  readonly finishedAt: number | null;
  readonly outcome: RunOutcome;
  readonly counts: Record<string, unknown> | null;
  readonly error: string | null;
  readonly host: string | null;
  readonly pid: number | null;
}

export async function startRun(db: Knex, t: StateTables, r: { type: RunType; host: string; pid: number; now?: number }): Promise<number> {
  const row = { type: r.type, started_at: r.now ?? Date.now(), outcome: 'running', host: r.host, pid: r.pid };
  const [id] = (await db(t.runs).insert(row, ['id'])) as Array<{ id: number | string } | number>;
  return typeof id === 'object' && id !== null ? Number(id.id) : Number(id);
}

export async function finishRun(
  db: Knex,
  t: StateTables,
  id: number,
  r: { outcome: Exclude<RunOutcome, 'running'>; counts?: Record<string, unknown>; error?: string | null; now?: number },
): Promise<void> {
  await db(t.runs)
    .where({ id })
    .update({ outcome: r.outcome, finished_at: r.now ?? Date.now(), counts: r.counts ? JSON.stringify(r.counts) : null, error: r.error == null ? null : sanitizeErrorText(r.error) });
}

export async function lastRuns(db: Knex, t: StateTables, n = 5): Promise<Run[]> {
  const rows = (await db(t.runs).orderBy('id', 'desc').limit(n)) as Array<Record<string, unknown>>;
  return rows.map((r) => ({
    id: Number(r.id),
    type: r.type as RunType,
    startedAt: toMillis(r.started_at as number) ?? 0,
    finishedAt: toMillis(r.finished_at as number | null),
    outcome: r.outcome as RunOutcome,
    counts: fromJson<Record<string, unknown>>(r.counts as string | null),
    // Rows written before errors were sanitised may still hold a statement with its values.
    error: typeof r.error === 'string' ? sanitizeErrorText(r.error) : null,
    host: (r.host as string | null) ?? null,
    pid: r.pid === null || r.pid === undefined ? null : Number(r.pid),
  }));
}

/**
 * Runs left 'running' by a worker that died (SIGKILL, OOM, power loss) are marked crashed.
 * Called by whoever has just taken the leader lock: every run is started under that lock, so
 * no run can still be going. Returns how many.
 */
export async function markCrashedRuns(db: Knex, t: StateTables, now = Date.now()): Promise<number> {
  return db(t.runs)
    .where({ outcome: 'running' })
    .andWhere('started_at', '<=', now)
    .update({ outcome: 'crashed', finished_at: now, error: 'the worker ended without finishing this run (killed or crashed)' });
}
