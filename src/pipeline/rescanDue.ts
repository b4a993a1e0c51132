import cron from 'node-cron';
import type { Knex } from 'knex';
import type { ResolvedConfig } from '../config/load.js';
import { KINDS, type Kind } from '../kinds.js';
import type { StateTables } from '../state/tables.js';
import { listWatermarks } from '../state/watermarks.js';
import { toMillis } from '../state/values.js';
import { rescanEnabled } from './rescanWindow.js';

/** Days searched for an occurrence; a schedule silent for longer than this counts as due. */
const SEARCH_DAYS = 4 * 366;

/**
 * The first time after `afterMs` and at or before `untilMs` that the cron expression fires,
 * in epoch ms, or null when it does not fire in between. The expression is matched the way
 * the `run` daemon's node-cron schedule matches it (the process's local zone; pm2 sets
 * TZ=UTC), so a cron-driven `once` rescans on the same occasions as `run` would.
 */
export function firstOccurrence(schedule: string, afterMs: number, untilMs: number): number | null {
  if (untilMs <= afterMs) return null;
  const fields = cron.parse(schedule);
  const task = cron.createTask(schedule, () => undefined);
  try {
    const start = new Date(afterMs);
    const day = new Date(start.getFullYear(), start.getMonth(), start.getDate());
    for (let i = 0; i <= SEARCH_DAYS; i++) {
      const d = new Date(day.getFullYear(), day.getMonth(), day.getDate() + i);
      if (d.getTime() > untilMs) return null;
      // One probe per day: the time fields hold for any of their values, so the day matches
      // when its first candidate time does.
      if (!task.match(new Date(d.getFullYear(), d.getMonth(), d.getDate(), fields.hour[0]!, fields.minute[0]!, fields.second[0]!))) continue;
      for (const h of fields.hour) {
        // Whole hours outside (after, until] are skipped without looking at their minutes.
        const hourStart = new Date(d.getFullYear(), d.getMonth(), d.getDate(), h).getTime();
        if (hourStart + 3_600_000 <= afterMs) continue;
        if (hourStart > untilMs) return null;
        for (const m of fields.minute) {
          for (const s of fields.second) {
            const at = new Date(d.getFullYear(), d.getMonth(), d.getDate(), h, m, s);
            const ms = at.getTime();
            if (ms <= afterMs) continue;
            if (ms > untilMs) return null;
            if (task.match(at)) return ms;
          }
        }
      }
    }
    // Nothing for years: a rescan that old is due whatever the expression says.
    return untilMs;
  } finally {
    void task.destroy();
  }
}

export interface RescanDue {
  readonly due: boolean;
  /** When the schedule fired since the last rescan (epoch ms), when due. */
  readonly scheduledAt: number | null;
  /** The last rescan of the kind rescanned longest ago, or the first cycle when none has rescanned yet. */
  readonly since: number | null;
}

/**
 * Whether `sync.rescan_schedule` has fired since the last rescan, as `run` would have seen it.
 *
 * The reference is the stored `last_rescan_at` of each enabled kind (the oldest wins). A kind
 * that has never been rescanned counts from the first cycle the runs table remembers: `run`
 * also rescans only at the schedule's first occasion after it started, and the first cycle
 * of a kind reads every row anyway. A state with no cycle at all owes no rescan.
 */
export async function rescanDue(state: Knex, t: StateTables, config: ResolvedConfig, now = Date.now()): Promise<RescanDue> {
  const none: RescanDue = { due: false, scheduledAt: null, since: null };
  if (!rescanEnabled(config)) return none;
  const enabled = KINDS.filter((k: Kind) => (config.kinds[k] as { enabled?: boolean } | undefined)?.enabled);
  if (enabled.length === 0) return none;
  const marks = new Map((await listWatermarks(state, t)).map((w) => [w.kind, w.lastRescanAt]));
  let since: number | null = null;
  let firstCycle: number | null | undefined;
  for (const kind of enabled) {
    let at = marks.get(kind) ?? null;
    if (at === null) {
      if (firstCycle === undefined) {
        const row = (await state(t.runs).where({ type: 'cycle' }).min({ at: 'started_at' }).first()) as { at: number | string | null } | undefined;
        firstCycle = toMillis(row?.at ?? null);
      }
      at = firstCycle;
    }
    if (at === null) continue;
    since = since === null ? at : Math.min(since, at);
  }
  if (since === null) return none;
  const scheduledAt = firstOccurrence(config.sync.rescan_schedule, since, now);
  return { due: scheduledAt !== null, scheduledAt, since };
}
