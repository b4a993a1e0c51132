import type { Knex } from 'knex';
import type { ResolvedConfig } from '../config/load.js';
import type { AnyKindConfig } from '../config/schema.js';
import type { FeishuClient } from '../feishu/client.js';
import { KINDS, type Kind } from '../kinds.js';
import type { Logger } from '../log/logger.js';
import { mapContextFor, mapRow, type MappedRow } from '../mapping/map.js';
import type { Metrics } from '../metrics/metrics.js';
import type { PlanDeps } from '../plan/plan.js';
import type { QuotaMeter } from '../state/quota.js';
import type { StateTables } from '../state/tables.js';
import type { LookbackWindows } from './lookback.js';

/** What every stage of the pipeline is given (built by `openPipeline` in wiring.ts). */
export interface PipelineDeps {
  readonly config: ResolvedConfig;
  readonly source: Knex;
  readonly state: Knex;
  readonly t: StateTables;
  readonly client: FeishuClient;
  readonly logger: Logger;
  readonly owner: string;
  /** What this pipeline remembers of each kind's lookback window between cycles. */
  readonly lookback: LookbackWindows;
  readonly metrics?: Metrics | undefined;
  /** Counts successful Feishu calls per month (feishu.monthly_quota). */
  readonly quota?: QuotaMeter | undefined;
  /** The clock the lookback window is judged by (epoch ms); `Date.now` when absent. Tests advance it. */
  readonly now?: (() => number) | undefined;
  /** The mapper's code identity in the mapping hash; the package version when absent. Tests change it. */
  readonly codeVersion?: string | undefined;
}

export function enabledKinds(config: ResolvedConfig): Array<[Kind, AnyKindConfig]> {
  return KINDS.flatMap((k) => {
    const cfg = config.kinds[k] as AnyKindConfig | undefined;
    return cfg && cfg.enabled ? [[k, cfg] as [Kind, AnyKindConfig]] : [];
  });
}

/** Map source rows of a kind with the configured zones (needs the configuration only). */
export function mapRows(config: ResolvedConfig, kind: Kind, cfg: AnyKindConfig, rows: readonly Record<string, unknown>[]): MappedRow[] {
  const ctx = mapContextFor(cfg, { sourceTimeZone: config.source.time_zone, feishuTimeZone: config.feishu.time_zone });
  return rows.map((row) => mapRow(kind, cfg, row, ctx));
}

export function planDeps(deps: PipelineDeps): PlanDeps {
  return { state: deps.state, t: deps.t, namespace: deps.config.sync.namespace, logger: deps.logger };
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
