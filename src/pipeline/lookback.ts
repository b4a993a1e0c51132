import type { Kind } from '../kinds.js';
import type { Cursor } from '../state/watermarks.js';

interface Window {
  value: string | null;
  key: string | null;
  since: number;
  settled: boolean;
}

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
 *
 * One instance per pipeline (a field of its deps).
 */
export class LookbackWindows {
  private readonly windows = new Map<Kind, Window>();

  constructor(private readonly lookbackMs: number) {}

  /** A read of `kind` from `position` starts at `now`: the lookback seconds it re-reads (0 once settled). */
  begin(kind: Kind, position: Cursor | null, lookbackSeconds: number, now = Date.now()): { lookbackSeconds: number; finish(end: Cursor | null, complete: boolean): void } {
    let w = this.windows.get(kind);
    if (!w || w.value !== (position?.value ?? null) || w.key !== (position?.key ?? null)) {
      w = { value: position?.value ?? null, key: position?.key ?? null, since: now, settled: false };
      this.windows.set(kind, w);
    }
    const window = w;
    return {
      lookbackSeconds: window.settled ? 0 : lookbackSeconds,
      // Only a complete read that left the watermark where it was counts towards settling.
      finish: (end, complete) => {
        if (complete && (end?.value ?? null) === window.value && (end?.key ?? null) === window.key && now > window.since + 2 * this.lookbackMs) window.settled = true;
      },
    };
  }
}
