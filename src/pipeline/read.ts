import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import type { ResolvedConfig } from '../config/load.js';
import type { AnyKindConfig } from '../config/schema.js';
import type { Kind } from '../kinds.js';
import { addCounts, emptyPlanCounts, planRows, type PlanCounts } from '../plan/plan.js';
import { iterateChanged, sourceNow } from '../source/extract.js';
import { compareCursors, cursorTimeMs } from '../source/keyset.js';
import { cursorColumn } from '../source/relation.js';
import { startPosition } from '../source/start.js';
import { getKindState } from '../state/kindState.js';
import type { StateTables } from '../state/tables.js';
import { getCursor, getWatermark, type Cursor } from '../state/watermarks.js';

/** The keyset position of a kind (what `preview --from` and the reader start after). */
export type { Cursor };
import { enabledKinds, mapRows, planDeps, type PipelineDeps, type StageTimings } from './deps.js';
import { applyStartFrom, sourceZone, startFloor } from './kindState.js';
import { yieldToEventLoop } from './yield.js';
import { prepareRows } from '../resolve/pipeline.js';

/**
 * The watermark's whole journey in one place: read it, read everything changed since (the
 * lookback window first), map it, plan it; the watermark moves page by page, inside the
 * transaction that stores the page's operations (planRows).
 */
export async function readChanges(deps: PipelineDeps, kind: Kind, cfg: AnyKindConfig, timings: StageTimings, signal?: AbortSignal): Promise<PlanCounts> {
  const total = emptyPlanCounts();
  let position: Cursor | null = await getCursor(deps.state, deps.t, kind);
  position ??= await applyStartFrom(deps, kind, cfg);
  const window = deps.lookback.begin(kind, position, deps.config.sync.lookback_seconds, (deps.now ?? Date.now)());
  const zone = cfg.time_zone ?? deps.config.source.time_zone;
  const horizon = cfg.cursor.mode === 'updated_at' ? { atMs: (await sourceNow(deps.source)) + deps.config.sync.future_margin_seconds * 1000, zone } : undefined;
  const pages = iterateChanged(deps.source, cfg, position, { pageSize: deps.config.sync.page_size, lookbackSeconds: window.lookbackSeconds, floor: await startFloor(deps, kind, cfg), horizon });
  for (;;) {
    let t0 = performance.now();
    const step = await pages.next();
    timings.extractMs += performance.now() - t0;
    if (step.done) break;
    const page = step.value;
    if (signal?.aborted) {
      await pages.return(undefined);
      break;
    }
    // Lookback pages re-read rows behind the watermark: it only ever moves forward.
    const next = page.last && (!position || compareCursors(page.last, position) > 0) ? page.last : null;
    for (const row of page.held ?? []) {
      deps.logger.warn('source row with a cursor time beyond the source clock: held back, the watermark stops before it (fix the value; the rescan still syncs the row)', {
        kind,
        sourceKey: row[cfg.key] ?? null,
        cursor: row[cursorColumn(cfg)] ?? null,
        horizon: DateTime.fromMillis(horizon?.atMs ?? 0).setZone(zone).toFormat('yyyy-MM-dd HH:mm:ss'),
      });
    }
    total.future += page.held?.length ?? 0;
    t0 = performance.now();
    const mapped = mapRows(deps.config, kind, cfg, await prepareRows(deps, kind, cfg, page.rows, signal));
    timings.mapMs += performance.now() - t0;
    await yieldToEventLoop();
    t0 = performance.now();
    addCounts(total, await planRows(planDeps(deps), kind, mapped, { watermark: next }));
    timings.planMs += performance.now() - t0;
    if (next) position = next;
    await yieldToEventLoop();
  }
  window.finish(position, !signal?.aborted);
  return total;
}

/**
 * Seconds from a timestamp watermark to now; null for id cursors and values that are not
 * times. Negative when the watermark is ahead of the clock (a future updated_at it passed):
 * shown as it is, never as 0, which would look like a worker that is up to date.
 */
export function watermarkLagSeconds(cursorValue: string | null, zone: string, now = Date.now()): number | null {
  const ms = cursorTimeMs(cursorValue, zone);
  return ms === null ? null : Math.round((now - ms) / 1000);
}

/** The lag of every enabled timestamp kind's watermark, in seconds. */
export async function watermarkLags(deps: PipelineDeps): Promise<Partial<Record<Kind, number>>> {
  const out: Partial<Record<Kind, number>> = {};
  for (const [kind, cfg] of enabledKinds(deps.config)) {
    if (cfg.cursor.mode === 'id') continue;
    const wm = await getWatermark(deps.state, deps.t, kind);
    const lag = watermarkLagSeconds(wm?.cursor?.value ?? null, cfg.time_zone ?? deps.config.source.time_zone);
    if (lag !== null) out[kind] = lag;
  }
  return out;
}

/** Where the next read of a kind starts, and why (for commands that only look: preview, check-config). */
export type ReadStart =
  | { readonly from: 'watermark'; readonly position: Cursor }
  /** sync.start_from applies (no watermark yet, not applied before); null: an empty id table. */
  | { readonly from: 'start_from'; readonly position: Cursor | null; readonly startFrom: string }
  /** From the beginning of the source; `started`: sync.start_from was applied before (the kind began). */
  | { readonly from: 'beginning'; readonly started: boolean };

/**
 * The position `readChanges` would start the next cycle of a kind at, without writing
 * anything: the watermark, else where sync.start_from puts a kind that has not begun, else
 * the beginning. State tables that do not exist yet (not migrated) read as empty.
 */
export async function nextReadStart(
  dbs: { readonly source: Knex; readonly state: Knex; readonly tables: StateTables },
  config: ResolvedConfig,
  kind: Kind,
  cfg: AnyKindConfig,
  /** `state: false`: the state database is not to be asked (unreachable, or its tables missing). */
  opts: { state?: boolean } = {},
): Promise<ReadStart> {
  const hasWatermarks = opts.state !== false && (await dbs.state.schema.hasTable(dbs.tables.watermarks));
  const position = hasWatermarks ? await getCursor(dbs.state, dbs.tables, kind) : null;
  if (position) return { from: 'watermark', position };
  const started = hasWatermarks && (await dbs.state.schema.hasTable(dbs.tables.kindState)) ? Boolean((await getKindState(dbs.state, dbs.tables, kind))?.startedAt) : false;
  const startFrom = config.sync.start_from;
  if (startFrom && !started) return { from: 'start_from', position: await startPosition(dbs.source, cfg, startFrom, sourceZone(config, cfg)), startFrom };
  return { from: 'beginning', started };
}
