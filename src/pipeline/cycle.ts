import os from 'node:os';
import { describeError } from '../errors.js';
import type { FeishuClient } from '../feishu/client.js';
import type { Kind } from '../kinds.js';
import { addCounts, emptyPlanCounts, type PlanCounts } from '../plan/plan.js';
import type { SendCounts } from '../send/sender.js';
import { applyRetention } from '../state/retention.js';
import { finishRun, startRun } from '../state/runs.js';
import { foldCounts, outboxDepth, oldestPending } from '../state/outbox.js';
import { setLastRescan } from '../state/watermarks.js';
import { emptyTimings, enabledKinds, type PipelineDeps, type StageTimings } from './deps.js';
import { reevaluateInvalid } from './kindState.js';
import { readChanges, watermarkLags } from './read.js';
import { rescanKind } from './rescan.js';
import { rescanEnabled, rescanWindow } from './rescanWindow.js';
import { cycleSummary, PRETTY } from './summary.js';
import { sender } from './wiring.js';
import { yieldToEventLoop } from './yield.js';
import { prepareKind, reevaluateResolution } from '../resolve/pipeline.js';

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
    for (const [kind, configured] of enabledKinds(deps.config)) {
      if (opts.signal?.aborted) break;
      const cfg = await prepareKind(deps, kind, configured);
      const counts = await reevaluateInvalid(deps, kind, cfg, opts.signal);
      addCounts(counts, await reevaluateResolution(deps, kind, cfg, opts.signal));
      addCounts(counts, await readChanges(deps, kind, cfg, timings, opts.signal));
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
      await foldCounts(deps.state, deps.t).catch((err: unknown) => deps.logger.warn('folding the status counts failed; the next cycle tries again', { error: describeError(err) }));
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
