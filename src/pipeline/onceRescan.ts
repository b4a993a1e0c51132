import { DateTime } from 'luxon';
import type { Logger } from '../log/logger.js';
import type { PipelineDeps } from './deps.js';
import { rescanDue } from './rescanDue.js';

/**
 * Whether a `once` without `--rescan` / `--no-rescan` rescans: when `sync.rescan_schedule`
 * fired since the last rescan, exactly as `run` would have rescanned at that tick. A
 * cron-driven `once` (system cron, a Kubernetes CronJob) thus still sees the changes only a
 * rescan finds: status changes on an id-cursor source, untrustworthy timestamps, hard deletes.
 */
export async function scheduledRescan(deps: Pick<PipelineDeps, 'state' | 't' | 'config'>, logger: Logger, now = Date.now()): Promise<boolean> {
  const d = await rescanDue(deps.state, deps.t, deps.config, now);
  if (d.due) {
    const at = (ms: number | null) => (ms === null ? null : DateTime.fromMillis(ms).toUTC().toISO());
    logger.info('rescan due by sync.rescan_schedule: this cycle rescans', {
      schedule: deps.config.sync.rescan_schedule,
      scheduledAt: at(d.scheduledAt),
      lastRescanOrFirstCycle: at(d.since),
    });
  }
  return d.due;
}
