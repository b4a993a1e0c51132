import type { AnyKindConfig } from '../config/schema.js';
import type { Kind } from '../kinds.js';
import type { MappedRow } from '../mapping/map.js';
import { addCounts, emptyPlanCounts, planRows, type PlanCounts } from '../plan/plan.js';
import { countByEffectiveDate, existingKeys, readByEffectiveDate } from '../source/window.js';
import { heldKeysPage } from '../state/records.js';
import { mapRows, planDeps, type PipelineDeps } from './deps.js';
import { prepareKind, prepareRows } from '../resolve/pipeline.js';
import { yieldToEventLoop } from './yield.js';

/** A window of effective dates, yyyy-MM-dd, both ends included. */
export interface DateWindow {
  readonly from: string;
  readonly to: string;
}

/** Held keys compared with the source per page. */
const HELD_PAGE = 1000;

/** How many source rows of a kind have an effective date in the window (what a rescan or backfill reads). */
export function rowsInWindow(deps: PipelineDeps, cfg: AnyKindConfig, window: DateWindow): Promise<number> {
  return countByEffectiveDate(deps.source, cfg, window);
}

/**
 * Rescan a window of effective dates: catches changes a source's timestamps did not show,
 * and records deleted outright after they were sent (a key Feishu holds that the source no
 * longer has is revoked). The watermark is left alone. The cycle's rescan and `backfill`
 * (without the deletes) both read through here.
 */
export async function rescanKind(
  deps: PipelineDeps,
  kind: Kind,
  cfg: AnyKindConfig,
  window: DateWindow,
  opts: { signal?: AbortSignal; dryRun?: boolean; detectDeletes?: boolean; allowMassRevoke?: boolean; onPage?: (counts: PlanCounts) => void } = {},
): Promise<PlanCounts> {
  const total = emptyPlanCounts();
  cfg = await prepareKind(deps, kind, cfg);
  for await (const rows of readByEffectiveDate(deps.source, cfg, { ...window, pageSize: deps.config.sync.page_size })) {
    if (opts.signal?.aborted) return total;
    const mapped = mapRows(deps.config, kind, cfg, await prepareRows(deps, kind, cfg, rows, opts.signal));
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
      `rescan refused to revoke ${goneTotal} of the ${heldTotal} ${kind} records Feishu holds in the window: they are gone from the source, more than sync.max_revoke_fraction (${deps.config.sync.max_revoke_fraction}); nothing revoked. Check the source; if the deletions are real, run \`npx attendance-sync once --rescan --allow-mass-revoke\``,
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
