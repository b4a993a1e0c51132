import type { AnyKindConfig } from '../config/schema.js';
import type { ResolvedConfig } from '../config/load.js';
import type { Kind } from '../kinds.js';
import { versionHash } from '../identity.js';
import { PACKAGE_VERSION } from '../version.js';
import { keyBinding } from '../source/keyset.js';
import type { Cursor } from '../state/watermarks.js';
import { sourceRelation } from '../source/relation.js';
import { startPosition } from '../source/start.js';
import type { SourceRow } from '../mapping/map.js';
import { getKindState, invalidKeys, setKindState } from '../state/kindState.js';
import { setWatermark } from '../state/watermarks.js';
import { planRows, emptyPlanCounts, addCounts, type PlanCounts } from '../plan/plan.js';
import { chunks } from '../state/records.js';
import { mapRows, planDeps, type PipelineDeps } from './deps.js';
import { prepareRows } from '../resolve/pipeline.js';

/**
 * Everything that decides how a kind's rows map: its section, the zones the mapper reads in,
 * and the mapper's code (the release's package version), so an upgrade judges invalid rows again.
 */
export function mappingHash(config: ResolvedConfig, cfg: AnyKindConfig, codeVersion: string = PACKAGE_VERSION): string {
  return versionHash({ kind: cfg, sourceTimeZone: config.source.time_zone, feishuTimeZone: config.feishu.time_zone, code: codeVersion });
}

/** The zone a kind's zone-less source timestamps are in. */
export function sourceZone(config: ResolvedConfig, cfg: AnyKindConfig): string {
  return cfg.time_zone ?? config.source.time_zone;
}

/**
 * A kind without a watermark starts where `sync.start_from` says, once: the bound is stored
 * as its watermark (so `now` means the first cycle's now, not every cycle's), and the kind
 * state remembers that it was applied. Null: read from the beginning.
 */
export async function applyStartFrom(deps: PipelineDeps, kind: Kind, cfg: AnyKindConfig): Promise<Cursor | null> {
  const startFrom = deps.config.sync.start_from;
  if (!startFrom) return null;
  const ks = await getKindState(deps.state, deps.t, kind);
  if (ks?.startedAt) return null;
  const position = await startPosition(deps.source, cfg, startFrom, sourceZone(deps.config, cfg));
  const now = Date.now();
  await deps.state.transaction(async (trx) => {
    if (position) await setWatermark(trx, deps.t, kind, position, now);
    await setKindState(trx, deps.t, kind, { startFrom: position ? (position.value ?? `after key ${position.key}`) : 'the beginning', startedAt: now }, now);
  });
  deps.logger.info('first cycle of this kind starts at sync.start_from (history goes through `backfill`)', {
    kind,
    startFrom,
    ...(position?.value ? { from: position.value } : position ? { afterKey: position.key } : {}),
  });
  return position;
}

/** The bound sync.start_from began a kind at (null: none; `after key K` for an id cursor): the lookback stays above it. */
export async function startFloor(deps: PipelineDeps, kind: Kind, _cfg: AnyKindConfig): Promise<string | null> {
  if (!deps.config.sync.start_from) return null;
  const ks = await getKindState(deps.state, deps.t, kind);
  return ks?.startedAt ? ks.startFrom : null;
}

/**
 * Invalid records were judged by the mapping of their time. When it changed (a type code
 * added, a value map fixed), their rows are read again by key and planned like any other:
 * a fixed mapping syncs them on the next cycle, not only after a rescan.
 */
export async function reevaluateInvalid(deps: PipelineDeps, kind: Kind, cfg: AnyKindConfig, signal?: AbortSignal): Promise<PlanCounts> {
  const total = emptyPlanCounts();
  const hash = mappingHash(deps.config, cfg, deps.codeVersion);
  const ks = await getKindState(deps.state, deps.t, kind);
  if (ks?.mappingHash === hash) return total;
  const keys = (await invalidKeys(deps.state, deps.t, kind)).filter((k) => k !== '(no key)');
  for (const part of chunks(keys, 500)) {
    if (signal?.aborted) return total;
    const rows = (await sourceRelation(deps.source, cfg).select('*').whereIn(cfg.key, part.map(keyBinding))) as SourceRow[];
    if (rows.length > 0) addCounts(total, await planRows(planDeps(deps), kind, mapRows(deps.config, kind, cfg, await prepareRows(deps, kind, cfg, rows, signal))));
  }
  await setKindState(deps.state, deps.t, kind, { mappingHash: hash });
  if (keys.length > 0) deps.logger.info('mapping changed (configuration or release): invalid records judged again', { kind, invalid: keys.length, created: total.created, stillInvalid: total.invalid });
  return total;
}
