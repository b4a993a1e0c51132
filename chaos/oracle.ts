import type { Knex } from 'knex';
import type { LedgerEntry } from '../src/emulator/index.js';
import { KINDS, type Kind } from '../src/kinds.js';
import type { StateTables } from '../src/state/tables.js';
import { SOURCE_TABLES } from './source.js';

/*
 * The verdict of a chaos run: what Feishu (the emulator's ledger) holds against what the
 * source says it should hold, row by row.
 *
 * Every approval in the ledger is traced back to its source row through its idempotent_id,
 * which the worker writes into the sync table when it plans the create, before anything is
 * sent (so an approval stored by a request whose reply was lost is traced too). A source row
 * that is approved and not deleted must have exactly one approved (status 2) approval whose
 * user, start, end (and reason, when the row has one) equal the row's current values; every
 * other row must have none.
 *
 *   missing     rows that should be in Feishu and have no approved approval with their content
 *   duplicated  approvals beyond the first for one row (distinct idempotent_ids, both approved
 *               with the row's content), plus ledger entries beyond the first per idempotent_id
 *               (whatever their status: Feishu must store each key once)
 *   unrevoked   approved approvals that should not be: the row is cancelled, rejected, pending,
 *               deleted (soft or outright), or the approval carries an earlier version of the
 *               row; plus approved approvals that no sync-table create accounts for
 *   stuck       sync-table operations still pending or sending, or failed / dead
 *
 * `contentDiff` is a second, independent check that needs no sync table: the multiset of
 * (kind, user, start, end) of the approved ledger entries against the source's approved rows.
 *
 * Rows deleted outright are invisible to the change cursor; only a rescan revokes them. A
 * verdict taken before the rescan passes `ignoreGone` to set their approvals aside.
 */

export interface Verdict {
  readonly missing: number;
  readonly duplicated: number;
  readonly unrevoked: number;
  readonly stuck: number;
  /** Rows that should be in Feishu. */
  readonly expected: number;
  /** Approved entries in the ledger. */
  readonly active: number;
  /** All entries in the ledger (revoked ones included). */
  readonly ledger: number;
  /** Sync-table rows by status. */
  readonly statuses: Readonly<Record<string, number>>;
  readonly contentDiff: { missing: number; surplus: number };
  /** Up to 20 examples of what went wrong, for the report. */
  readonly problems: readonly string[];
}

interface SourceRow {
  kind: Kind;
  id: string;
  expected: boolean;
  user: string;
  start: string;
  end: string;
  reason: string | null;
}

const STUCK = ['pending', 'sending', 'failed', 'dead'];

function wall(v: unknown): string {
  return String(v ?? '').replace('T', ' ').slice(0, 19);
}

async function sourceRows(db: Knex): Promise<SourceRow[]> {
  const out: SourceRow[] = [];
  for (const kind of KINDS) {
    const deleted = kind === 'out' ? 'r.is_deleted' : 'r.deleted_at';
    const rows = (await db(`${SOURCE_TABLES[kind]} as r`)
      .leftJoin('employees as e', 'e.id', 'r.employee_id')
      .select('r.id', 'e.employee_no', 'r.start_at', 'r.end_at', 'r.reason', 'r.status', { deleted })) as Array<Record<string, unknown>>;
    for (const r of rows) {
      const isDeleted = kind === 'out' ? Number(r.deleted) === 1 : r.deleted !== null && r.deleted !== undefined;
      const reason = typeof r.reason === 'string' && r.reason.trim() !== '' ? r.reason.trim() : null;
      out.push({ kind, id: String(r.id), expected: r.status === 'approved' && !isDeleted, user: String(r.employee_no), start: wall(r.start_at), end: wall(r.end_at), reason });
    }
  }
  return out;
}

function matches(row: SourceRow, e: LedgerEntry): boolean {
  return (
    e.userId === row.user &&
    String(e.item.start_time) === row.start &&
    String(e.item.end_time) === row.end &&
    (row.reason === null || e.item.reason === row.reason)
  );
}

/**
 * `ignoreGone`: leave out approvals of rows deleted outright (only a rescan can find those),
 * for a verdict taken before the rescan.
 */
export async function verify(db: Knex, t: StateTables, ledger: readonly LedgerEntry[], o: { ignoreGone?: boolean } = {}): Promise<Verdict> {
  const problems: string[] = [];
  const note = (p: string) => {
    if (problems.length < 20) problems.push(p);
  };

  // idempotent_id → the source row it was planned for.
  const creates = (await db(t.syncRecords).where({ operation: 'create' }).whereNotNull('idempotency_key').select('kind', 'source_key', 'idempotency_key')) as Array<{
    kind: Kind;
    source_key: string;
    idempotency_key: string;
  }>;
  const owner = new Map<string, string>();
  for (const c of creates) owner.set(c.idempotency_key, `${c.kind}|${c.source_key}`);

  let duplicated = 0;
  const perKey = new Map<string, number>();
  for (const e of ledger) if (e.idempotentId) perKey.set(e.idempotentId, (perKey.get(e.idempotentId) ?? 0) + 1);
  for (const [k, n] of perKey) {
    if (n > 1) {
      duplicated += n - 1;
      note(`idempotent_id ${k} stored ${n} times`);
    }
  }

  let unrevoked = 0;
  const activeByRow = new Map<string, LedgerEntry[]>();
  const active = ledger.filter((e) => e.status === 2);
  for (const e of active) {
    const row = e.idempotentId ? owner.get(e.idempotentId) : undefined;
    if (!row) {
      unrevoked++;
      note(`approved ${e.kind} approval ${e.approvalId} (${e.userId} ${String(e.item.start_time)}) has no create in the sync table`);
      continue;
    }
    const list = activeByRow.get(row) ?? [];
    list.push(e);
    activeByRow.set(row, list);
  }

  let missing = 0;
  let expected = 0;
  const rows = await sourceRows(db);
  for (const row of rows) {
    const key = `${row.kind}|${row.id}`;
    const list = activeByRow.get(key) ?? [];
    activeByRow.delete(key);
    if (!row.expected) {
      if (list.length > 0) note(`${key}: not approved or deleted in the source, ${list.length} approved approval(s) in Feishu`);
      unrevoked += list.length;
      continue;
    }
    expected++;
    const good = list.filter((e) => matches(row, e));
    const ids = new Set(good.map((e) => e.idempotentId));
    if (good.length === 0) {
      missing++;
      note(`${key}: approved in the source (${row.user} ${row.start} … ${row.end}), ${list.length > 0 ? 'only an earlier version' : 'nothing'} approved in Feishu`);
    }
    if (ids.size > 1) {
      duplicated += ids.size - 1;
      note(`${key}: ${ids.size} approved approvals with the same content`);
    }
    if (list.length > good.length) {
      unrevoked += list.length - good.length;
      note(`${key}: ${list.length - good.length} approval(s) of an earlier version still approved`);
    }
  }
  for (const [key, list] of activeByRow) {
    if (o.ignoreGone) continue;
    unrevoked += list.length;
    note(`${key}: gone from the source, ${list.length} approval(s) still approved`);
  }

  const statusRows = (await db(t.syncRecords).select('status').count({ n: '*' }).groupBy('status')) as Array<{ status: string; n: number | string }>;
  const statuses = Object.fromEntries(statusRows.map((r) => [r.status, Number(r.n)]));
  const stuck = STUCK.reduce((a, s) => a + (statuses[s] ?? 0), 0);
  if (stuck > 0) {
    const examples = (await db(t.syncRecords).whereIn('status', STUCK).orderBy('id').limit(5).select('id', 'kind', 'source_key', 'operation', 'status', 'attempts', 'error_code', 'feishu_msg')) as Array<Record<string, unknown>>;
    for (const x of examples) note(`stuck: ${JSON.stringify(x)}`);
  }

  const gone = new Set([...activeByRow.values()].flat());
  const judged = o.ignoreGone ? active.filter((e) => !gone.has(e)) : active;
  return { missing, duplicated, unrevoked, stuck, expected, active: active.length, ledger: ledger.length, statuses, contentDiff: contentDiff(rows, judged), problems };
}

/** Multiset difference of (kind, user, start, end) between the source's approved rows and the approved ledger entries. */
function contentDiff(rows: readonly SourceRow[], active: readonly LedgerEntry[]): { missing: number; surplus: number } {
  const want = new Map<string, number>();
  for (const r of rows) if (r.expected) want.set(`${r.kind}|${r.user}|${r.start}|${r.end}`, (want.get(`${r.kind}|${r.user}|${r.start}|${r.end}`) ?? 0) + 1);
  let surplus = 0;
  for (const e of active) {
    const k = `${e.kind}|${e.userId}|${String(e.item.start_time)}|${String(e.item.end_time)}`;
    const n = want.get(k) ?? 0;
    if (n > 0) want.set(k, n - 1);
    else surplus++;
  }
  let missing = 0;
  for (const n of want.values()) missing += n;
  return { missing, surplus };
}

export function verdictOk(v: Verdict): boolean {
  return v.missing + v.duplicated + v.unrevoked + v.stuck + v.contentDiff.missing + v.contentDiff.surplus === 0;
}
