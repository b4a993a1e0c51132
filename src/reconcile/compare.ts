import { DateTime } from 'luxon';
import { KIND_ARRAY, KINDS, type Kind } from '../kinds.js';
import type { QueriedUserApproval } from '../feishu/client.js';

/*
 * What reconcile compares: approval items as Feishu's query returns them, and the creates the
 * sync table says Feishu should hold. Pure functions; reconcile.ts does the reading and writing.
 */

/**
 * The kinds of drift:
 * - missing-in-feishu: sent, current, and Feishu holds it under no status;
 * - revoked-in-feishu: sent, current, and withdrawn in Feishu (an admin in the console);
 * - active-in-feishu: approved in Feishu under our namespace for a record that is cancelled,
 *   changed (another version or generation is current) or unknown to the sync table;
 * - differs: the current version is approved, but its times or type are not what we sent;
 * - foreign: approved in Feishu without an idempotent_id of ours (by hand, another system).
 */
export const DRIFT_TYPES = Object.freeze(['missing-in-feishu', 'revoked-in-feishu', 'active-in-feishu', 'differs', 'foreign'] as const);
export type DriftType = (typeof DRIFT_TYPES)[number];

/** One approval item of a query answer, flattened. */
export interface FeishuItem {
  readonly kind: Kind;
  readonly userId: string;
  readonly date: string;
  /** The zone the answer gave its wall-clock times in ('' for departed users: UTC+0). */
  readonly timeZone: string;
  readonly approvalId: string;
  readonly idempotentId: string | null;
  readonly item: Record<string, unknown>;
}

/** Flatten query answers into items, one per approval_id (windows overlap, the same item can come twice). */
export function flattenItems(answers: readonly QueriedUserApproval[], kinds: readonly Kind[]): FeishuItem[] {
  const seen = new Map<string, FeishuItem>();
  for (const ua of answers) {
    for (const kind of KINDS) {
      if (!kinds.includes(kind)) continue;
      for (const raw of (ua[KIND_ARRAY[kind]] as Array<Record<string, unknown>> | undefined) ?? []) {
        const approvalId = typeof raw.approval_id === 'string' ? raw.approval_id : raw.approval_id !== undefined ? String(raw.approval_id) : '';
        if (!approvalId || seen.has(approvalId)) continue;
        seen.set(approvalId, {
          kind,
          userId: String(ua.user_id),
          date: String(ua.date),
          timeZone: typeof ua.time_zone === 'string' ? ua.time_zone : '',
          approvalId,
          idempotentId: typeof raw.idempotent_id === 'string' && raw.idempotent_id !== '' ? raw.idempotent_id : null,
          item: raw,
        });
      }
    }
  }
  return [...seen.values()];
}

/** Whether an idempotent_id is one this deployment made (namespace-letter-26 base32, see plan/version.ts). */
export function isOurs(idempotentId: string | null, namespace: string): boolean {
  return idempotentId !== null && new RegExp(`^${namespace}-[lotg]-[a-z2-7]{26}$`).test(idempotentId);
}

/** An instant of a Feishu wall-clock time in a zone; '' or an unknown zone means UTC+0 (departed users). */
function instant(value: unknown, zone: string): number | null {
  if (typeof value !== 'string') return null;
  const dt = DateTime.fromFormat(value, 'yyyy-MM-dd HH:mm:ss', { zone: zone || 'UTC' });
  if (dt.isValid) return dt.toMillis();
  const fallback = DateTime.fromFormat(value, 'yyyy-MM-dd HH:mm:ss', { zone: 'UTC' });
  return fallback.isValid ? fallback.toMillis() : null;
}

/** The fields that tell a record's type, per kind. */
const TYPE_FIELDS: Readonly<Record<Kind, readonly string[]>> = Object.freeze({
  leave: ['uniq_id', 'unit'],
  out: ['uniq_id', 'unit'],
  overtime: ['type', 'category', 'unit'],
  trip: [],
});

/**
 * How an approved item differs from the item we sent (start, end as instants, never as wall
 * clocks: departed users come back in UTC+0 with an empty time_zone; the type fields), or
 * an empty list when it matches.
 */
export function differences(sent: Record<string, unknown>, sentZone: string, found: FeishuItem): string[] {
  const out: string[] = [];
  for (const f of ['start_time', 'end_time']) {
    // Same zone: the wall clocks compare as they are (parsing every time costs seconds for thousands).
    if (found.timeZone === sentZone && sent[f] === found.item[f]) continue;
    const a = instant(sent[f], sentZone);
    const b = instant(found.item[f], found.timeZone);
    if (a !== null && b !== null && a !== b) out.push(`${f} ${String(found.item[f])}${found.timeZone ? '' : ' (UTC)'} in Feishu, ${String(sent[f])} sent`);
  }
  for (const f of TYPE_FIELDS[found.kind]) {
    if (sent[f] === undefined || found.item[f] === undefined) continue;
    if (String(sent[f]) !== String(found.item[f])) out.push(`${f} ${String(found.item[f])} in Feishu, ${String(sent[f])} sent`);
  }
  return out;
}

/** The single item of a stored create payload. */
export function sentItem(kind: Kind, payload: unknown): Record<string, unknown> {
  const p = (payload ?? {}) as Record<string, unknown>;
  return ((p[KIND_ARRAY[kind]] as Array<Record<string, unknown>> | undefined) ?? [])[0] ?? {};
}

export interface Drift {
  readonly type: DriftType;
  readonly kind: Kind;
  /** The source key; null for an item unknown to the sync table or foreign. */
  readonly sourceKey: string | null;
  readonly userId: string;
  readonly approvalId: string | null;
  readonly idempotentId: string | null;
  readonly startTime: string | null;
  readonly endTime: string | null;
  readonly detail: string;
  /**
   * none: reported only (no --repair); queued: repair operations written, not all sent yet;
   * repaired: the repair reached Feishu; never: foreign, left alone.
   */
  repair: 'none' | 'queued' | 'repaired' | 'never';
}

export function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}
