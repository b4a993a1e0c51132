/** Names of the state tables under a configurable prefix (default `attendance_sync_`). */
export interface StateTables {
  readonly prefix: string;
  readonly watermarks: string;
  readonly records: string;
  readonly syncRecords: string;
  readonly runs: string;
  readonly lock: string;
  /** The Feishu tenant the state is bound to. */
  readonly tenant: string;
  /** Per kind: the hash of the mapping that judged it, where sync.start_from began it. */
  readonly kindState: string;
  /** Successful Feishu calls per calendar month, against the monthly quota. */
  readonly quota: string;
  /** E-mail / mobile → Feishu user id, cached (fields.user_id with `resolve`). */
  readonly userResolution: string;
  /** The uniq_id given to each type code of a `types_query`. */
  readonly typeIds: string;
  /** The latest Feishu lookup of each item searched for (by idempotent_id or approval_id). */
  readonly lookups: string;
  /** Operations per kind and status, kept as the sync table is written (appended changes, folded). */
  readonly statusCounts: string;
  /** The sync table with readable UTC timestamps (`created_at_utc`, …). */
  readonly syncRecordsView: string;
  /** knex's own bookkeeping tables, prefixed too so two installations can share a database. */
  readonly migrations: string;
  readonly migrationsLock: string;
}

export function stateTables(prefix: string): StateTables {
  return Object.freeze({
    prefix,
    watermarks: `${prefix}watermarks`,
    records: `${prefix}records`,
    syncRecords: `${prefix}sync_records`,
    runs: `${prefix}runs`,
    lock: `${prefix}lock`,
    tenant: `${prefix}tenant`,
    kindState: `${prefix}kind_state`,
    quota: `${prefix}quota`,
    userResolution: `${prefix}user_resolution`,
    typeIds: `${prefix}type_ids`,
    lookups: `${prefix}lookups`,
    statusCounts: `${prefix}status_counts`,
    syncRecordsView: `${prefix}sync_records_view`,
    migrations: `${prefix}migrations`,
    migrationsLock: `${prefix}migrations_lock`,
  });
}
