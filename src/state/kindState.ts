import type { Knex } from 'knex';
import type { Kind } from '../kinds.js';
import type { StateTables } from './tables.js';
import { toMillis } from './values.js';

/** Per kind: the hash of the mapping that last judged its rows, and where sync.start_from began it. */
export interface KindState {
  readonly kind: Kind;
  readonly mappingHash: string | null;
  readonly startFrom: string | null;
  readonly startedAt: number | null;
}

export async function getKindState(db: Knex, t: StateTables, kind: Kind): Promise<KindState | null> {
  const r = (await db(t.kindState).where({ kind }).first()) as
    | { kind: Kind; mapping_hash: string | null; start_from: string | null; started_at: number | string | null }
    | undefined;
  return r ? { kind: r.kind, mappingHash: r.mapping_hash, startFrom: r.start_from, startedAt: toMillis(r.started_at) } : null;
}

export async function setKindState(
  db: Knex,
  t: StateTables,
  kind: Kind,
  values: { mappingHash?: string; startFrom?: string | null; startedAt?: number },
  now = Date.now(),
): Promise<void> {
  const row: Record<string, unknown> = { updated_at: now };
  if (values.mappingHash !== undefined) row.mapping_hash = values.mappingHash;
  if (values.startFrom !== undefined) row.start_from = values.startFrom;
  if (values.startedAt !== undefined) row.started_at = values.startedAt;
  await db(t.kindState)
    .insert({ kind, ...row })
    .onConflict('kind')
    .merge(Object.keys(row));
}

/** Source keys of the kind's records that are invalid now. */
export async function invalidKeys(db: Knex, t: StateTables, kind: Kind): Promise<string[]> {
  const rows = (await db(t.records).where({ kind, state: 'invalid' }).select('source_key')) as Array<{ source_key: string }>;
  return rows.map((r) => r.source_key);
}
