import { DRIFT_TYPES, type DriftType } from './compare.js';
import type { Drift, ReconcileResult } from './reconcile.js';

const REPAIR_TEXT: Readonly<Record<Drift['repair'], string>> = {
  none: 'not repaired (run with --repair)',
  queued: 'repair queued, not sent yet (see status)',
  repaired: 'repaired',
  never: 'left alone',
};

/** One line per drift: type, kind, key, user, approval, times, what was done, why. */
export function driftLine(d: Drift): string {
  const key = d.sourceKey ?? '-';
  const span = d.startTime || d.endTime ? ` ${d.startTime ?? '?'} … ${d.endTime ?? '?'}` : '';
  return `${d.type} ${d.kind} key=${key} user=${d.userId} approval=${d.approvalId ?? '-'}${span}: ${d.detail} [${REPAIR_TEXT[d.repair]}]`;
}

export function countsByType(drifts: readonly Drift[]): Record<DriftType, number> {
  const out = Object.fromEntries(DRIFT_TYPES.map((t) => [t, 0])) as Record<DriftType, number>;
  for (const d of drifts) out[d.type]++;
  return out;
}

export function summaryLine(r: ReconcileResult, repair: boolean): string {
  const by = countsByType(r.drifts);
  const drift = r.drifts.length - by.foreign;
  const repaired = r.drifts.filter((d) => d.repair === 'repaired').length;
  const types = DRIFT_TYPES.filter((t) => t !== 'foreign' && by[t] > 0).map((t) => `${t} ${by[t]}`);
  const parts = [
    `reconcile ${r.from} … ${r.to}${r.queriedTo !== r.to ? ` (Feishu queried up to ${r.queriedTo}: the query accepts no later date)` : ''}`,
    `${r.checked} record(s) of ${r.users} user(s) compared in ${r.calls} query call(s)`,
    `${drift} drift${types.length > 0 ? ` (${types.join(', ')})` : ''}`,
  ];
  if (by.foreign > 0) parts.push(`${by.foreign} foreign record(s) left alone`);
  if (r.busy > 0) parts.push(`${r.busy} record(s) skipped: operations in the outbox`);
  if (repair) parts.push(`${repaired} repaired`);
  parts.push(r.driftLeft === 0 ? 'no drift left' : `${r.driftLeft} drift left${repair ? '' : ' (--repair fixes it)'}`);
  return parts.join('; ');
}

/** The --json document. */
export function toJson(r: ReconcileResult): Record<string, unknown> {
  return {
    from: r.from,
    to: r.to,
    queriedTo: r.queriedTo,
    kinds: r.kinds,
    users: r.users,
    checked: r.checked,
    busy: r.busy,
    calls: r.calls,
    durationMs: r.durationMs,
    drift: r.drifts.map((d) => ({ ...d })),
    summary: { byType: countsByType(r.drifts), repaired: r.drifts.filter((d) => d.repair === 'repaired').length, driftLeft: r.driftLeft },
    send: r.send,
  };
}
