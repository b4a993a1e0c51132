import { describeError } from '../errors.js';
import type { PipelineDeps } from '../pipeline/deps.js';
import { enabledKinds } from '../pipeline/deps.js';
import { reconcile, recentWindow, type ReconcileResult } from './reconcile.js';
import { countsByType, driftLine } from './report.js';

/**
 * The reconcile `run` does on `sync.reconcile_schedule`: the last `sync.reconcile_window_days`
 * days, repaired when `sync.reconcile_repair`. One log line per drift and a summary; a failure
 * is logged, never fatal to the daemon (the next schedule tries again).
 */
export async function scheduledReconcile(deps: PipelineDeps, signal?: AbortSignal): Promise<ReconcileResult | null> {
  const s = deps.config.sync;
  const window = recentWindow(s.reconcile_window_days, deps.config.feishu.time_zone);
  try {
    const r = await reconcile(deps, { ...window, kinds: enabledKinds(deps.config).map(([k]) => k), repair: s.reconcile_repair, signal });
    for (const d of r.drifts) deps.logger.warn('reconcile: drift', { line: driftLine(d), type: d.type, kind: d.kind, sourceKey: d.sourceKey, repair: d.repair });
    deps.logger.info('reconcile finished', { ...window, calls: r.calls, checked: r.checked, drift: countsByType(r.drifts), driftLeft: r.driftLeft });
    return r;
  } catch (err) {
    deps.logger.error('reconcile failed; the next scheduled one tries again', { ...window, error: describeError(err) });
    return null;
  }
}
