import { DateTime } from 'luxon';
import type { ResolvedConfig } from '../config/load.js';
import type { AnyKindConfig } from '../config/schema.js';
import { describeRescanWindow, rescanEnabled } from '../pipeline/rescanWindow.js';
import { firstOccurrence } from '../pipeline/rescanDue.js';
import { effectiveDateColumn } from '../source/relation.js';
import { lookbackIds } from '../source/idLookback.js';
import type { CheckReport } from './report.js';

/** How a kind finds its changes, and what that cannot see: one line each for check-config. */
export interface Detection {
  readonly mode: string;
  readonly blind: string;
  /** The mode misses whole classes of change for good (no rescan): a warning, not a note. */
  readonly warn: boolean;
}

function rescanText(config: ResolvedConfig): string {
  const schedule = config.sync.rescan_schedule;
  const now = Date.now();
  const at = firstOccurrence(schedule, now, now + 400 * 86_400_000);
  const next = at === null ? '' : `, next ${DateTime.fromMillis(at).toFormat('yyyy-MM-dd HH:mm ZZZZ')}`;
  return `a rescan of ${describeRescanWindow(config)} on sync.rescan_schedule "${schedule}"${next} (\`run\`, and \`once\` when one is due)`;
}

export function detectionOf(config: ResolvedConfig, cfg: AnyKindConfig): Detection {
  const rescan = rescanEnabled(config);
  const window = config.sync.rescan_window_days;
  const dateCol = effectiveDateColumn(cfg);
  const outside = window === 'all' ? '' : `; a change to a record whose ${dateCol} lies outside the window is never seen`;
  const lookbackOn = config.sync.lookback_seconds > 0;
  if (cfg.cursor.mode === 'id') {
    const n = lookbackIds(cfg);
    const lookback = lookbackOn && n > 0 ? `, re-reading the last ${n} ids each poll (late commits)` : ' (no id lookback: a lower id that commits after a higher one waits for the rescan)';
    if (!rescan) {
      return {
        mode: `new rows by id: keyset on "${cfg.key}"${lookback}; no rescan (sync.rescan_window_days: 0)`,
        blind: 'status changes (approvals, cancellations), edits and deletions of existing rows are never seen: set sync.rescan_window_days',
        warn: true,
      };
    }
    return {
      mode: `new rows by id: keyset on "${cfg.key}"${lookback}; status changes, edits and deletions by ${rescanText(config)}`,
      blind: `a change to an existing row reaches Feishu only at the next rescan${outside}`,
      warn: false,
    };
  }
  const col = cfg.cursor.column ?? 'updated_at';
  const lookback = lookbackOn ? `, re-reading ${config.sync.lookback_seconds} s behind the watermark (late commits)` : ' (no lookback: a transaction that commits late is missed until the rescan)';
  if (!rescan) {
    return {
      mode: `changes by timestamp: keyset on ("${col}", "${cfg.key}")${lookback}; no rescan (sync.rescan_window_days: 0)`,
      blind: `an edit that leaves "${col}" unchanged, a row deleted outright and a row without "${col}" are never seen`,
      warn: true,
    };
  }
  return {
    mode: `changes by timestamp: keyset on ("${col}", "${cfg.key}")${lookback}; edits that keep "${col}" and rows deleted outright by ${rescanText(config)}`,
    blind: `an edit that leaves "${col}" unchanged, a hard delete and a row without "${col}" wait for the rescan${outside}`,
    warn: false,
  };
}

/** check-config's lines for one kind: how changes are detected, and what that mode cannot see. */
export function reportDetection(report: CheckReport, config: ResolvedConfig, kind: string, cfg: AnyKindConfig): void {
  const d = detectionOf(config, cfg);
  report.ok(`kinds.${kind}.cursor`, `detects ${d.mode}`);
  (d.warn ? report.warn.bind(report) : report.ok.bind(report))(`kinds.${kind}.cursor`, `cannot see: ${d.blind}`);
}
