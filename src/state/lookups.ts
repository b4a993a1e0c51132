import type { Knex } from 'knex';
import type { LookupRecord } from '../feishu/clientTypes.js';
import type { StateTables } from './tables.js';

const APPROVAL = 'approval:';

/** A lookups row's key: the idempotent_id searched for, or `approval:` + the approval_id. */
export function lookupSubject(l: { idempotentId: string | null; approvalId: string | null }): string {
  return l.approvalId ? `${APPROVAL}${l.approvalId}` : (l.idempotentId ?? '');
}

/** Keep the latest lookup of an item (one row per subject, replaced by the next lookup). */
export async function recordLookup(db: Knex, t: StateTables, l: LookupRecord): Promise<void> {
  const subject = lookupSubject(l);
  if (!subject) return;
  await db(t.lookups)
    .insert({
      subject,
      kind: l.kind,
      user_id: l.userId,
      statuses: l.statuses.join(','),
      found_approval_id: l.found?.approvalId ?? null,
      found_status: l.found?.status ?? null,
      looked_at: l.at,
    })
    .onConflict('subject')
    .merge();
}

export interface StoredLookup {
  subject: string;
  /** What the item was searched by (read off the subject). */
  by: 'idempotent_id' | 'approval_id';
  statuses: number[];
  foundApprovalId: string | null;
  foundStatus: number | null;
  at: number;
}

/** The stored lookups of these subjects (an empty list before migration 0017). */
export async function lookupsOf(db: Knex, t: StateTables, subjects: readonly string[]): Promise<StoredLookup[]> {
  if (subjects.length === 0 || !(await db.schema.hasTable(t.lookups))) return [];
  const rows = (await db(t.lookups).whereIn('subject', [...new Set(subjects)].slice(0, 1000))) as Array<Record<string, unknown>>;
  return rows.map((r) => ({
    subject: String(r.subject),
    by: String(r.subject).startsWith(APPROVAL) ? 'approval_id' : 'idempotent_id',
    statuses: String(r.statuses).split(',').filter(Boolean).map(Number),
    foundApprovalId: (r.found_approval_id as string | null) ?? null,
    foundStatus: r.found_status === null || r.found_status === undefined ? null : Number(r.found_status),
    at: Number(r.looked_at),
  }));
}
