import os from 'node:os';
import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import type { ResolvedConfig } from '../config/load.js';
import type { AnyKindConfig } from '../config/schema.js';
import { describeError } from '../errors.js';
import type { FeishuClient } from '../feishu/client.js';
import { KINDS, type Kind } from '../kinds.js';
import type { Logger } from '../log/logger.js';
import { mapContextFor, mapRow, type MappedRow } from '../mapping/map.js';
import type { Metrics } from '../metrics/metrics.js';
import { addCounts, emptyPlanCounts, planRows, type PlanCounts } from '../plan/plan.js';
import { Sender, type SendCounts } from '../send/sender.js';
import { compareCursors, cursorTimeMs, existingKeys, iterateChanged, readByEffectiveDate, sourceNow, type Cursor } from '../source/extract.js';
import { heldKeysPage } from '../state/records.js';
import { applyRetention } from '../state/retention.js';
import { cursorColumn } from '../source/relation.js';
import { finishRun, startRun } from '../state/runs.js';
import { outboxDepth, oldestPending } from '../state/syncRecords.js';
import type { StateTables } from '../state/tables.js';
import type { QuotaMeter } from '../state/quota.js';
import { getWatermark, setLastRescan } from '../state/watermarks.js';
import { applyStartFrom, reevaluateInvalid, startFloor } from './kindState.js';
import { cycleSummary, PRETTY } from './summary.js';
import { rescanEnabled, rescanWindowOf } from './rescanWindow.js';
import { yieldToEventLoop } from './yield.js';

export interface PipelineDeps {
  readonly config: ResolvedConfig;
  readonly source: Knex;
  readonly state: Knex;
  readonly t: StateTables;
  readonly client: FeishuClient;
  readonly logger: Logger;
  readonly owner: string;
  readonly metrics?: Metrics | undefined;
  /** Counts successful Feishu calls per month (feishu.monthly_quota). */
  readonly quota?: QuotaMeter | undefined;
}

/** Where a cycle's time went, in ms: reading the source, mapping rows, planning (state DB), sending. */
export interface StageTimings {
  extractMs: number;
  mapMs: number;
  planMs: number;
  sendMs: number;
}

export function emptyTimings(): StageTimings {
  return { extractMs: 0, mapMs: 0, planMs: 0, sendMs: 0 };
}

/** What the Feishu client did during one cycle. */
export interface ClientFigures {
  /** Operations asked of Feishu (create, revoke, lookup). */
  readonly calls: number;
  /** HTTP requests they took, retries included. */
  readonly requests: number;
  readonly rateLimited: number;
  readonly retries: number;
  readonly limiterWaitMs: number;
}

export interface CycleResult {
  readonly outcome: 'ok' | 'failed' | 'partial';
  readonly kinds: Partial<Record<Kind, PlanCounts>>;
  readonly plan: PlanCounts;
  readonly send: SendCounts;
  readonly outboxDepth: number;
  readonly durationMs: number;
  readonly timings: StageTimings;
  readonly client: ClientFigures;
  /** Age of the oldest operation still waiting, in seconds (0 when none). */
  readonly oldestPendingSeconds: number;
  /** Now minus each timestamp watermark, in seconds: how far behind the newest change seen is. */
  readonly watermarkLagSeconds: Partial<Record<Kind, number>>;
  readonly error?: string;
}

function planDeps(deps: PipelineDeps) {
  return { state: deps.state, t: deps.t, namespace: deps.config.sync.namespace, logger: deps.logger };
}

function clientTotals(client: FeishuClient): ClientFigures {
  const s = client.stats();
  return { calls: s.calls, requests: s.requests, rateLimited: s.rateLimited, retries: s.retries, limiterWaitMs: s.limiterWaitMs };
}

function clientDelta(now: ClientFigures, before: ClientFigures): ClientFigures {
  return {
    calls: Math.max(0, now.calls - before.calls),
    requests: Math.max(0, now.requests - before.requests),
    rateLimited: Math.max(0, now.rateLimited - before.rateLimited),
    retries: Math.max(0, now.retries - before.retries),
    limiterWaitMs: Math.max(0, now.limiterWaitMs - before.limiterWaitMs),
  };
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

async function watermarkLags(deps: PipelineDeps): Promise<Partial<Record<Kind, number>>> {
  const out: Partial<Record<Kind, number>> = {};
  for (const [kind, cfg] of enabledKinds(deps.config)) {
    if (cfg.cursor.mode === 'id') continue;
    const wm = await getWatermark(deps.state, deps.t, kind);
    const lag = watermarkLagSeconds(wm?.cursorValue ?? null, cfg.time_zone ?? deps.config.source.time_zone);
    if (lag !== null) out[kind] = lag;
  }
  return out;
}

export function enabledKinds(config: ResolvedConfig): Array<[Kind, AnyKindConfig]> {
  return KINDS.flatMap((k) => {
    const cfg = config.kinds[k] as AnyKindConfig | undefined;
    return cfg && cfg.enabled ? [[k, cfg] as [Kind, AnyKindConfig]] : [];
  });
}

export function mapRows(deps: PipelineDeps, kind: Kind, cfg: AnyKindConfig, rows: readonly Record<string, unknown>[]): MappedRow[] {
  const ctx = mapContextFor(cfg, { sourceTimeZone: deps.config.source.time_zone, feishuTimeZone: deps.config.feishu.time_zone });
  return rows.map((row) => mapRow(kind, cfg, row, ctx));
}

export function sender(deps: PipelineDeps): Sender {
  const f = deps.config.feishu;
  return new Sender({
    state: deps.state,
    t: deps.t,
    client: deps.client,
    employeeType: f.employee_type,
    namespace: deps.config.sync.namespace,
    owner: deps.owner,
    concurrency: f.concurrency,
    maxAttempts: f.max_attempts,
    retryBaseMs: f.retry_base_ms,
    retryMaxMs: f.retry_max_ms,
    leaseMs: Math.max(60_000, f.timeout_ms * 6),
    logger: deps.logger,
    metrics: deps.metrics,
  });
}

/** Read everything changed since the watermark, map it, plan it; the watermark moves page by page. */
/**
 * When the lookback window behind a watermark has been re-read for the last time.
 *
 * The window exists for transactions that commit late: a row whose updated_at is at or
 * below the watermark but which was not visible yet when the watermark was read. Such a
 * transaction commits within `lookback` of its updated_at, so once a re-read has started
 * more than twice the lookback after this process first saw the watermark (the second
 * lookback is the margin for clock skew between the source database and this host), no row
 * can still appear in the window, and idle polls stop re-reading it: after a bulk update of
 * a million rows they would otherwise read all of them on every poll. A moved watermark, or
 * a restart (the state is in memory), starts the rule afresh, so correctness never depends on it.
 */
interface LookbackState {
  value: string | null;
  key: string | null;
  since: number;
  settled: boolean;
}

const lookbackStates = new WeakMap<PipelineDeps, Map<Kind, LookbackState>>();

function lookbackStatesOf(deps: PipelineDeps): Map<Kind, LookbackState> {
  let m = lookbackStates.get(deps);
  if (!m) lookbackStates.set(deps, (m = new Map()));
  return m;
}

async function extractKind(deps: PipelineDeps, kind: Kind, cfg: AnyKindConfig, timings: StageTimings, signal?: AbortSignal): Promise<PlanCounts> {
  const total = emptyPlanCounts();
  const wm = await getWatermark(deps.state, deps.t, kind);
  let position: Cursor | null = wm && (wm.cursorValue !== null || wm.cursorKey !== null) ? { value: wm.cursorValue, key: wm.cursorKey } : null;
  position ??= await applyStartFrom(deps, kind, cfg);
  const states = lookbackStatesOf(deps);
  const lookbackMs = deps.config.sync.lookback_seconds * 1000;
  const readStarted = Date.now();
  let ls = states.get(kind);
  if (!ls || ls.value !== (position?.value ?? null) || ls.key !== (position?.key ?? null)) {
    ls = { value: position?.value ?? null, key: position?.key ?? null, since: readStarted, settled: false };
    states.set(kind, ls);
  }
  const lookbackSeconds = ls.settled ? 0 : deps.config.sync.lookback_seconds;
  const zone = cfg.time_zone ?? deps.config.source.time_zone;
  const horizon = cfg.cursor.mode === 'updated_at' ? { atMs: (await sourceNow(deps.source)) + deps.config.sync.future_margin_seconds * 1000, zone } : undefined;
  const pages = iterateChanged(deps.source, cfg, position, { pageSize: deps.config.sync.page_size, lookbackSeconds, floor: await startFloor(deps, kind, cfg), horizon });
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
    const mapped = mapRows(deps, kind, cfg, page.rows);
    timings.mapMs += performance.now() - t0;
    await yieldToEventLoop();
    t0 = performance.now();
    addCounts(total, await planRows(planDeps(deps), kind, mapped, { watermark: next }));
    timings.planMs += performance.now() - t0;
    if (next) position = next;
    await yieldToEventLoop();
  }
  // Only a complete read counts towards settling the window.
  if (!signal?.aborted && (position?.value ?? null) === ls.value && (position?.key ?? null) === ls.key && readStarted > ls.since + 2 * lookbackMs) ls.settled = true;
  return total;
}

/**
 * Rescan a window of effective dates: catches changes a source's timestamps did not show,
 * and records deleted outright after they were sent (a key Feishu holds that the source no
 * longer has is revoked). The watermark is left alone.
 */
export async function rescanKind(
  deps: PipelineDeps,
  kind: Kind,
  cfg: AnyKindConfig,
  window: { from: string; to: string },
  opts: { signal?: AbortSignal; dryRun?: boolean; detectDeletes?: boolean; allowMassRevoke?: boolean; onPage?: (counts: PlanCounts) => void } = {},
): Promise<PlanCounts> {
  const total = emptyPlanCounts();
  for await (const rows of readByEffectiveDate(deps.source, cfg, { ...window, pageSize: deps.config.sync.page_size })) {
    if (opts.signal?.aborted) return total;
    const mapped = mapRows(deps, kind, cfg, rows);
    const counts = await planRows(planDeps(deps), kind, mapped, { dryRun: opts.dryRun });
    addCounts(total, counts);
    opts.onPage?.(counts);
    await yieldToEventLoop();
  }
  if (opts.detectDeletes === false) return total;
  // Keys Feishu holds for the window, page by page (memory stays flat however many there
  // are): one the source no longer has at all was deleted outright and is revoked; one that
  // only moved out of the window is left alone.
  const heldPages = async function* (): AsyncGenerator<{ held: string[]; gone: string[] }> {
    let after: string | null = null;
    for (;;) {
      if (opts.signal?.aborted) return;
      const held = await heldKeysPage(deps.state, deps.t, kind, window.from, window.to, { after, limit: HELD_PAGE });
      if (held.length === 0) return;
      const still = await existingKeys(deps.source, cfg, held);
      yield { held, gone: held.filter((k) => !still.has(k)) };
      await yieldToEventLoop();
      if (held.length < HELD_PAGE) return;
      after = held[held.length - 1]!;
    }
  };
  // A source that is momentarily empty (truncate and reload, failover to an empty replica)
  // looks like everything deleted: past the threshold nothing is revoked without the
  // operator's word. A single record is never a mass revoke. Counted in a first pass, so
  // that a refusal revokes nothing at all.
  let heldTotal = 0;
  let goneTotal = 0;
  for await (const page of heldPages()) {
    heldTotal += page.held.length;
    goneTotal += page.gone.length;
  }
  if (opts.signal?.aborted || goneTotal === 0) return total;
  const limit = Math.max(1, deps.config.sync.max_revoke_fraction * heldTotal);
  if (goneTotal > limit && !opts.allowMassRevoke) {
    deps.logger.error(
      `rescan refused to revoke ${goneTotal} of the ${heldTotal} ${kind} records Feishu holds in the window: they are gone from the source, more than sync.max_revoke_fraction (${deps.config.sync.max_revoke_fraction}); nothing revoked. Check the source; if the deletions are real, run \`attendance-sync once --rescan --allow-mass-revoke\``,
      { kind, gone: goneTotal, held: heldTotal, window },
    );
    total.revokesRefused += goneTotal;
    return total;
  }
  for await (const { gone } of heldPages()) {
    if (gone.length > 0) {
      const deleted: MappedRow[] = gone.map((k) => ({ outcome: 'inactive', kind, sourceKey: k, reason: 'deleted' }));
      addCounts(total, await planRows(planDeps(deps), kind, deleted, { dryRun: opts.dryRun }));
    }
  }
  return total;
}

/** Held keys compared with the source per page. */
const HELD_PAGE = 1000;

export function rescanWindow(config: ResolvedConfig, now = DateTime.now()): { from: string; to: string } {
  return rescanWindowOf(config, now);
}

/**
 * One sync cycle: extract → map → plan for every kind (and a rescan when asked), then send
 * until nothing is due. Ends with one summary log line and a row in the runs table.
 */
export async function runCycle(deps: PipelineDeps, opts: { signal?: AbortSignal; rescan?: boolean; send?: boolean; allowMassRevoke?: boolean } = {}): Promise<CycleResult> {
  const started = Date.now();
  const runId = await startRun(deps.state, deps.t, { type: 'cycle', host: os.hostname(), pid: process.pid, now: started });
  const clientBefore = clientTotals(deps.client);
  const timings = emptyTimings();
  const kinds: Partial<Record<Kind, PlanCounts>> = {};
  const plan = emptyPlanCounts();
  let send: SendCounts = { sent: 0, retried: 0, failed: 0, dead: 0, halted: 0 };
  let error: string | undefined;
  try {
    for (const [kind, cfg] of enabledKinds(deps.config)) {
      if (opts.signal?.aborted) break;
      const counts = await reevaluateInvalid(deps, kind, cfg, opts.signal);
      addCounts(counts, await extractKind(deps, kind, cfg, timings, opts.signal));
      if (opts.rescan && rescanEnabled(deps.config)) {
        addCounts(counts, await rescanKind(deps, kind, cfg, rescanWindow(deps.config), { signal: opts.signal, allowMassRevoke: opts.allowMassRevoke === true }));
        await setLastRescan(deps.state, deps.t, kind, Date.now());
      }
      kinds[kind] = counts;
      addCounts(plan, counts);
      for (const [outcome, n] of Object.entries(counts)) if (outcome !== 'read') deps.metrics?.records.inc({ kind, outcome }, n);
    }
    if (opts.send !== false && !opts.signal?.aborted) {
      const t0 = performance.now();
      send = await sender(deps).drain(opts.signal);
      timings.sendMs += performance.now() - t0;
    }
    if (!opts.signal?.aborted) {
      // Housekeeping must never fail a cycle: what is not deleted now is deleted next time.
      await applyRetention(deps.state, deps.t, { retentionDays: deps.config.state.retention_days, between: yieldToEventLoop }).catch((err: unknown) =>
        deps.logger.warn('retention failed; the next cycle tries again', { error: describeError(err) }),
      );
    }
  } catch (err) {
    error = describeError(err);
  }
  await deps.quota?.flush();
  const depth = await outboxDepth(deps.state, deps.t).catch(() => -1);
  // Operations still waiting after a sending cycle (Feishu down, backing off) were planned but not sent.
  const unsent = opts.send !== false && depth > 0;
  const outcome: CycleResult['outcome'] = error ? 'failed' : send.failed + send.dead + send.halted + plan.revokesRefused > 0 || unsent ? 'partial' : 'ok';
  const oldest = await oldestPending(deps.state, deps.t).catch(() => null);
  const oldestPendingSeconds = oldest ? Math.max(0, Math.round((Date.now() - oldest.createdAt) / 1000)) : 0;
  const lags = await watermarkLags(deps).catch(() => ({}) as Partial<Record<Kind, number>>);
  const client = clientDelta(clientTotals(deps.client), clientBefore);
  for (const k of Object.keys(timings) as Array<keyof StageTimings>) timings[k] = Math.round(timings[k]);
  const durationMs = Date.now() - started;
  await finishRun(deps.state, deps.t, runId, { outcome, counts: { ...plan, ...send, outboxDepth: depth, kinds, timings }, error: error ?? null }).catch(() => undefined);
  if (deps.metrics) {
    const m = deps.metrics;
    m.outboxDepth.set(Math.max(0, depth));
    m.cycleDuration.observe(durationMs / 1000);
    m.oldestPendingAge.set(oldestPendingSeconds);
    for (const [kind, lag] of Object.entries(lags)) m.watermarkLag.set({ kind }, lag);
    for (const [kind, c] of Object.entries(kinds)) m.futureRows.set({ kind }, c.future);
    if (outcome === 'ok') m.lastSuccess.set(Date.now() / 1000);
    m.rateLimited.inc(client.rateLimited);
    m.retries.inc(client.retries);
    m.limiterWait.inc(client.limiterWaitMs / 1000);
    for (const [stage, ms] of Object.entries(timings)) m.stageSeconds.inc({ stage: stage.replace(/Ms$/, '') }, ms / 1000);
  }
  const line = {
    outcome,
    durationMs,
    ...plan,
    ...send,
    outboxDepth: depth,
    oldestPendingSeconds,
    watermarkLagSeconds: lags,
    feishu: client,
    timings,
    kinds,
    ...(error ? { error } : {}),
  };
  // A terminal shows one short line; JSON logs keep the whole object.
  Object.assign(line, { [PRETTY]: cycleSummary(line) });
  if (error) deps.logger.error('cycle finished', line);
  else deps.logger.info('cycle finished', line);
  return { outcome, kinds, plan, send, outboxDepth: depth, durationMs, timings, client, oldestPendingSeconds, watermarkLagSeconds: lags, ...(error ? { error } : {}) };
}
