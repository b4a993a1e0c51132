import type { Knex } from 'knex';
import { AppError } from '../../errors.js';
import { dialectFor } from '../../db/dialect.js';
import type { Kind } from '../../kinds.js';
import type { StateTables } from '../tables.js';
import { chunks } from '../records.js';
import type { OpStatus } from './operation.js';

/*
 * The number of operations per kind and status, kept as the outbox is written, so `status`,
 * the console's overview and metrics read a few rows instead of counting a sync table of
 * millions. Every statement that adds, deletes or changes the status of operations appends
 * its changes to the counts table as rows of (kind, status, delta) in its own transaction:
 * appends take no lock on a shared counter row, so concurrent writers (a sender, a `retry`
 * from the shell, a reconcile) never wait for or deadlock on each other. The leader folds
 * the rows into one per (kind, status) after each cycle.
 */

type Delta = Map<string, { kind: string; status: string; delta: number }>;

function add(d: Delta, kind: string, status: string, by: number): void {
  const key = `${kind}\u0000${status}`;
  const e = d.get(key);
  if (e) e.delta += by;
  else d.set(key, { kind, status, delta: by });
}

/** Record these changes of the counts (inside the transaction that made them). */
async function append(trx: Knex, t: StateTables, d: Delta): Promise<void> {
  const rows = [...d.values()].filter((r) => r.delta !== 0);
  if (rows.length > 0) await trx(t.statusCounts).insert(rows);
}

/** Count operations that moved from one status to another (inside the transaction that moved them). */
export async function countMoves(trx: Knex, t: StateTables, moves: ReadonlyArray<{ kind: string; from: string; to: string }>): Promise<void> {
  const d: Delta = new Map();
  for (const m of moves) {
    if (m.from === m.to) continue;
    add(d, m.kind, m.from, -1);
    add(d, m.kind, m.to, 1);
  }
  await append(trx, t, d);
}

/** Run `fn` in a transaction: `db`'s own when it is one, else a new one (READ COMMITTED where claims use it). */
function inTransaction<T>(db: Knex, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  if (db.isTransaction) return fn(db as Knex.Transaction);
  const isolation = dialectFor(db).claimIsolation;
  return db.transaction(fn, isolation ? { isolationLevel: isolation } : undefined);
}

/**
 * Update the operations `pick` selects with `patch`, and the counts with them. The rows are
 * locked first (FOR UPDATE where the database has it), so what changes is exactly what was
 * counted. With `from`, only operations in that status are picked: where the database
 * returns updated rows, the one UPDATE then says what moved (the sender's path, once per
 * batch of calls). Returns how many rows changed.
 */
export async function updateOperations(
  db: Knex,
  t: StateTables,
  pick: (q: Knex.QueryBuilder) => Knex.QueryBuilder,
  patch: Record<string, unknown> & { status?: OpStatus },
  o: { from?: OpStatus } = {},
): Promise<number> {
  const from = o.from;
  const picked = from === undefined ? pick : (q: Knex.QueryBuilder) => pick(q).andWhere('status', from);
  /** The rows changed, with the status each had before. */
  type Moved = Array<{ kind: string; status: string }>;
  const updateReturning = async (trx: Knex.Transaction, status: OpStatus): Promise<Moved> =>
    ((await picked(trx(t.syncRecords)).update(patch).returning(['kind'])) as Array<{ kind: string }>).map((r) => ({ kind: r.kind, status }));
  const lockThenUpdate = async (trx: Knex.Transaction): Promise<Moved> => {
    let q = picked(trx(t.syncRecords)).select('id', 'kind', 'status');
    if (dialectFor(trx).skipLocked) q = q.forUpdate();
    const rows = (await q) as Array<{ id: number | string; kind: string; status: string }>;
    let n = 0;
    for (const part of chunks(rows.map((r) => Number(r.id)))) n += await trx(t.syncRecords).whereIn('id', part).update(patch);
    if (n !== rows.length) {
      // Only SQLite, where nothing is locked: another process wrote in between. Nothing is kept.
      throw new AppError('STATE_CLAIM_CONFLICT', 'the sync table changed while it was updated; the next attempt retries', { retryable: true });
    }
    return rows;
  };
  return inTransaction(db, async (trx) => {
    const moved = from !== undefined && dialectFor(trx).insertReturning ? await updateReturning(trx, from) : await lockThenUpdate(trx);
    const to = patch.status;
    if (to !== undefined) await countMoves(trx, t, moved.map((r) => ({ kind: r.kind, from: r.status, to })));
    return moved.length;
  });
}

/** Delete the operations `pick` selects, and their counts. Returns how many were deleted. */
export async function deleteOperations(db: Knex, t: StateTables, pick: (q: Knex.QueryBuilder) => Knex.QueryBuilder): Promise<number> {
  return inTransaction(db, async (trx) => {
    let q = pick(trx(t.syncRecords)).select('id', 'kind', 'status');
    if (dialectFor(trx).skipLocked) q = q.forUpdate();
    const rows = (await q) as Array<{ id: number | string; kind: string; status: string }>;
    let n = 0;
    for (const part of chunks(rows.map((r) => Number(r.id)))) n += Number(await trx(t.syncRecords).whereIn('id', part).delete());
    if (n !== rows.length) throw new AppError('STATE_CLAIM_CONFLICT', 'the sync table changed while rows were deleted; the next attempt retries', { retryable: true });
    const d: Delta = new Map();
    for (const r of rows) add(d, r.kind, r.status, -1);
    await append(trx, t, d);
    return n;
  });
}

/**
 * Insert operations, ignoring those whose unique key exists already, and count the ones
 * inserted. PostgreSQL and SQLite return the inserted rows; MySQL / MariaDB report how many
 * rows an INSERT IGNORE added, so rows go in one statement per kind and status there.
 */
export async function insertOperationRows(
  db: Knex,
  t: StateTables,
  rows: ReadonlyArray<Record<string, unknown> & { kind: string; status: string }>,
  conflict: readonly string[],
): Promise<number> {
  if (rows.length === 0) return 0;
  return inTransaction(db, async (trx) => {
    const d: Delta = new Map();
    let n = 0;
    if (!dialectFor(trx).insertReturning) {
      const groups = new Map<string, Array<Record<string, unknown> & { kind: string; status: string }>>();
      for (const r of rows) {
        const key = `${r.kind}\u0000${r.status}`;
        groups.set(key, [...(groups.get(key) ?? []), r]);
      }
      for (const group of groups.values()) {
        const { sql, bindings } = trx(t.syncRecords).insert(group).onConflict([...conflict]).ignore().toSQL().toNative();
        const [result] = (await trx.raw(sql, bindings)) as [{ affectedRows: number }];
        add(d, group[0]!.kind, group[0]!.status, result.affectedRows);
        n += result.affectedRows;
      }
    } else {
      const added = (await trx(t.syncRecords).insert(rows).onConflict([...conflict]).ignore().returning(['kind', 'status'])) as Array<{ kind: string; status: string }>;
      for (const r of added) add(d, r.kind, r.status, 1);
      n = added.length;
    }
    await append(trx, t, d);
    return n;
  });
}

/** Operations per kind and status, from the kept counts. */
export async function keptCounts(db: Knex, t: StateTables): Promise<Array<{ kind: Kind; status: OpStatus; count: number }>> {
  const rows = (await db(t.statusCounts).select('kind', 'status').sum({ n: 'delta' }).groupBy('kind', 'status').orderBy(['kind', 'status'])) as Array<{
    kind: Kind;
    status: OpStatus;
    n: number | string | null;
  }>;
  return rows.map((r) => ({ kind: r.kind, status: r.status, count: Number(r.n ?? 0) })).filter((r) => r.count !== 0);
}

/**
 * Fold the appended changes into one row per kind and status (the leader, after a cycle).
 * Only rows this transaction read are deleted, so a change committed meanwhile is kept for
 * the next fold; two folds at once cannot both delete the same rows (one rolls back).
 */
export async function foldCounts(db: Knex, t: StateTables, o: { maxRows?: number } = {}): Promise<number> {
  return inTransaction(db, async (trx) => {
    const rows = (await trx(t.statusCounts).select('id', 'kind', 'status', 'delta').orderBy('id').limit(o.maxRows ?? 20_000)) as Array<{
      id: number | string;
      kind: string;
      status: string;
      delta: number | string;
    }>;
    const d: Delta = new Map();
    for (const r of rows) add(d, r.kind, r.status, Number(r.delta));
    if (rows.length <= d.size) return 0; // one row per (kind, status) already
    let n = 0;
    for (const part of chunks(rows.map((r) => Number(r.id)))) n += Number(await trx(t.statusCounts).whereIn('id', part).delete());
    if (n !== rows.length) throw new AppError('STATE_CLAIM_CONFLICT', 'another process folded the status counts at the same time', { retryable: true });
    await append(trx, t, d);
    return n;
  });
}

/**
 * Count the sync table afresh and replace the kept counts (the migration that adds them,
 * and state written by other means). Holds the sync table still while it counts.
 */
export async function recountOperations(db: Knex, t: StateTables): Promise<void> {
  await inTransaction(db, async (trx) => {
    const { lockTable, lockingRead } = dialectFor(trx).holdStill;
    if (lockTable) await trx.raw(lockTable, [t.syncRecords]);
    let counted = trx(t.syncRecords).select('kind', 'status').count({ n: '*' }).groupBy('kind', 'status');
    if (lockingRead) counted = counted.forShare();
    const rows = (await counted) as Array<{ kind: string; status: string; n: number | string }>;
    await trx(t.statusCounts).delete();
    const d: Delta = new Map();
    for (const r of rows) add(d, r.kind, r.status, Number(r.n));
    await append(trx, t, d);
  });
}
