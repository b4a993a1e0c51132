import { DateTime } from 'luxon';
import type { ResolvedConfig } from '../config/load.js';

/**
 * The lower bound a whole-table rescan (`sync.rescan_window_days: all`) reads from: earlier
 * than any real effective date, and written so that every dialect compares it as a date.
 */
export const ALL_DATES_FROM = '0001-01-01';

/** A rescan is configured: `rescan_window_days` is `all` or more than 0. */
export function rescanEnabled(config: Pick<ResolvedConfig, 'sync'>): boolean {
  const days = config.sync.rescan_window_days;
  return days === 'all' || days > 0;
}

/**
 * The window of effective dates a rescan reads: the last `rescan_window_days` days (in
 * Feishu's zone) up to a year ahead, or every date for `all`.
 */
export function rescanWindow(config: Pick<ResolvedConfig, 'sync' | 'feishu'>, now = DateTime.now()): { from: string; to: string } {
  const today = now.setZone(config.feishu.time_zone);
  const days = config.sync.rescan_window_days;
  return {
    from: days === 'all' ? ALL_DATES_FROM : today.minus({ days }).toFormat('yyyy-MM-dd'),
    to: today.plus({ days: 366 }).toFormat('yyyy-MM-dd'),
  };
}

/** The window in words, for check-config and status: "the last 45 days" or "the whole table". */
export function describeRescanWindow(config: Pick<ResolvedConfig, 'sync'>): string {
  const days = config.sync.rescan_window_days;
  return days === 'all' ? 'every effective date (the whole table)' : `effective dates of the last ${days} days`;
}
