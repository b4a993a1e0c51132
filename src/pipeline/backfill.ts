import os from 'node:os';
import type { AnyKindConfig } from '../config/schema.js';
import { AppError } from '../errors.js';
import type { Kind } from '../kinds.js';
import { addCounts, emptyPlanCounts, type PlanCounts } from '../plan/plan.js';
import type { SendCounts } from '../send/sender.js';
import { keepLease, lockHolder } from '../state/lock.js';
import { quotaFigures, type QuotaFigures } from '../state/quota.js';
import { finishRun, startRun } from '../state/runs.js';
import { outboxDepth, requeueSentCreates } from '../state/outbox.js';
import { rescanKind, rowsInWindow, type DateWindow } from './rescan.js';
import { sender, type Pipeline } from './wiring.js';

export interface BackfillResult {
  readonly plan: PlanCounts;
  readonly send: SendCounts;
  /** Stopped by the signal or a lost lock: run it again to continue (nothing is sent twice). */
  readonly interrupted: boolean;
  /** Operations still due once sending stopped (Feishu down, backing off, held); 0 after a dry run. */
  readonly outboxDepth: number;
}

/**
 * Sync the records whose effective date lies in the window, regardless of the watermark:
 * under the worker's own lock (a backfill shares the rate budget with no one), read and plan
 * through the rescan (without its deletes), then send. A dry run plans in a rolled-back
 * transaction and sends nothing. Recorded as a run unless it is a dry run.
 */
export async function runBackfill(
  p: Pipeline,
  kinds: ReadonlyArray<[Kind, AnyKindConfig]>,
  window: DateWindow,
  opts: {
    dryRun?: boolean;
    /** Send already-sent versions again, with the same idempotency keys. */
    resend?: boolean;
    signal: AbortSignal;
    /** Called once the rows to read are counted, before the first page. */
    onStart?: (rows: number) => void;
    /** Called after each page with the rows read so far and the running totals. */
    onPage?: (done: number, total: PlanCounts) => void;
    /** Called when the lock is lost mid-way (the caller aborts the signal). */
    onLeaseLost?: () => void;
  },
): Promise<BackfillResult> {
  const config = p.deps.config;
  if (!(await p.lock.tryAcquire())) {
    const holder = await lockHolder(p.dbs.state, p.dbs.tables);
    throw new AppError('LOCK_HELD', `another worker holds the lock of this state database${holder ? ` (${holder.owner})` : ''}: stop \`npx attendance-sync run\` (pm2 stop attendance-sync) and run the backfill again`);
  }
  const lease = keepLease(p.lock, config.sync.lock_lease_seconds * 1000, () => opts.onLeaseLost?.());
  const runId = opts.dryRun ? null : await startRun(p.dbs.state, p.dbs.tables, { type: 'backfill', host: os.hostname(), pid: process.pid });
  const total: PlanCounts = emptyPlanCounts();
  let send: SendCounts = { sent: 0, retried: 0, failed: 0, dead: 0, halted: 0 };
  let depth = 0;
  try {
    let rows = 0;
    for (const [, cfg] of kinds) rows += await rowsInWindow(p.deps, cfg, window);
    opts.onStart?.(rows);
    let done = 0;
    for (const [kind, cfg] of kinds) {
      if (opts.signal.aborted) break;
      if (opts.resend && !opts.dryRun) await requeueSentCreates(p.dbs.state, p.dbs.tables, { kind, from: window.from, to: window.to });
      await rescanKind(p.deps, kind, cfg, window, {
        signal: opts.signal,
        dryRun: opts.dryRun === true,
        detectDeletes: false,
        onPage: (c) => {
          done += c.read;
          addCounts(total, c);
          opts.onPage?.(done, total);
        },
      });
    }
    if (!opts.dryRun && !opts.signal.aborted) {
      send = await sender(p.deps).drain(opts.signal);
      // Operations still waiting after the drain (Feishu down, backing off) were planned but not sent.
      depth = await outboxDepth(p.dbs.state, p.dbs.tables);
    }
  } finally {
    if (runId !== null) {
      await finishRun(p.dbs.state, p.dbs.tables, runId, {
        outcome: opts.signal.aborted ? 'interrupted' : send.failed + send.dead + send.halted > 0 || depth > 0 ? 'partial' : 'ok',
        counts: { ...total, ...send, outboxDepth: depth, from: window.from, to: window.to },
      });
    }
    lease.stop();
    await p.lock.release();
  }
  return { plan: total, send, interrupted: opts.signal.aborted, outboxDepth: depth };
}

/** The month's Feishu call count against feishu.monthly_quota (what a dry run compares its needs with). */
export function quotaOf(p: Pipeline): Promise<QuotaFigures> {
  const config = p.deps.config;
  return quotaFigures(p.dbs.state, p.dbs.tables, { zone: config.feishu.time_zone, limit: config.feishu.monthly_quota ?? null });
}
