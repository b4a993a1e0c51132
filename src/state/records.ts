import type { Knex } from 'knex';
import type { Kind } from '../kinds.js';
import type { StateTables } from './tables.js';
import { fromJson, toInt, toMillis } from './values.js';

/** What the source row last looked like. */
export const RECORD_STATES = Object.freeze(['active', 'inactive', 'invalid'] as const);
export type RecordStateName = (typeof RECORD_STATES)[number];

/** Current state of one source record: planning diffs a freshly mapped row against it. */
export interface RecordState {
  readonly kind: Kind;
  readonly sourceKey: string;
  /** The version Feishu holds or is being sent; null when nothing should be there. */
  readonly version: string | null;
  readonly state: RecordStateName;
  readonly userId: string | null;
  readonly effectiveDate: string | null;
  readonly reasons: string[] | null;
  readonly generation: number;
  readonly firstSeenAt: number;
  readonly updatedAt: number;
}

export interface RecordUpsert {
  readonly kind: Kind;
  readonly sourceKey: string;
  readonly version: string | null;
  readonly state: RecordStateName;
  readonly userId: string | null;
  readonly effectiveDate: string | null;
  readonly reasons: string[] | null;
  readonly generation: number;
}

interface Row {
  kind: Kind;
  source_key: string;
  version: string | null;
  state: RecordStateName;
  user_id: string | null;
  effective_date: string | null;
  reasons: string | null;
  generation: number | string;
  first_seen_at: number | string;
  updated_at: number | string;
}

function fromRow(r: Row): RecordState {
  return {
    kind: r.kind,
    sourceKey: r.source_key,
    version: r.version,
    state: r.state,
    userId: r.user_id,
    effectiveDate: r.effective_date,
    reasons: fromJson<string[]>(r.reasons),
    generation: toInt(r.generation),
    firstSeenAt: toMillis(r.first_seen_at) ?? 0,
    updatedAt: toMillis(r.updated_at) ?? 0,
  };
}

/** Chunked `IN (…)` lists stay under every dialect's bind-parameter limit. */
export function chunks<T>(items: readonly T[], size = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export async function getRecords(db: Knex, t: StateTables, kind: Kind, sourceKeys: readonly string[]): Promise<Map<string, RecordState>> {
  const out = new Map<string, RecordState>();
  for (const part of chunks([...new Set(sourceKeys)])) {
    const rows = (await db(t.records).where({ kind }).whereIn('source_key', part)) as Row[];
    for (const r of rows) out.set(r.source_key, fromRow(r));
  }
  return out;
}

export async function upsertRecords(trx: Knex, t: StateTables, rows: readonly RecordUpsert[], now = Date.now()): Promise<void> {
  for (const part of chunks(rows, 200)) {
    await trx(t.records)
      .insert(
        part.map((r) => ({
          kind: r.kind,
          source_key: r.sourceKey,
          version: r.version,
          state: r.state,
          user_id: r.userId,
          effective_date: r.effectiveDate,
          reasons: r.reasons ? JSON.stringify(r.reasons) : null,
          generation: r.generation,
          first_seen_at: now,
          updated_at: now,
        })),
      )
      .onConflict(['kind', 'source_key'])
      .merge(['version', 'state', 'user_id', 'effective_date', 'reasons', 'generation', 'updated_at']);
  }
}

/**
 * Keys that Feishu holds (version not null) with an effective date in [from, to]: a rescan
 * compares them with the source to find records deleted outright after they were sent.
 */
export async function activeKeysInDateRange(db: Knex, t: StateTables, kind: Kind, from: string, to: string): Promise<string[]> {
  const rows = (await db(t.records)
    .where({ kind })
    .whereNotNull('version')
    .whereBetween('effective_date', [from, to])
    .select('source_key')) as Array<{ source_key: string }>;
  return rows.map((r) => r.source_key);
}

/**
 * One page of those keys, in source_key order after `after`: the rescan walks them page by
 * page instead of holding every key of the window (about 126 MB per million keys).
 */
export async function heldKeysPage(
  db: Knex,
  t: StateTables,
  kind: Kind,
  from: string,
  to: string,
  o: { after: string | null; limit: number },
): Promise<string[]> {
  let q = db(t.records).where({ kind }).whereNotNull('version').whereBetween('effective_date', [from, to]);
  if (o.after !== null) q = q.andWhere('source_key', '>', o.after);
  const rows = (await q.orderBy('source_key').limit(o.limit).select('source_key')) as Array<{ source_key: string }>;
  return rows.map((r) => r.source_key);
}
