import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import type { ResolvedConfig } from '../config/load.js';
import { KINDS, type Kind } from '../kinds.js';
import { lockHolder } from './lock.js';
import { quotaFigures } from './quota.js';
import { lastRuns } from './runs.js';
import { heldCreates, latestErrors, oldestPending, statusCounts, OP_STATUS } from './outbox.js';
import type { StateTables } from './tables.js';
import { describeTenant, getTenantBinding } from './tenant.js';
import { listWatermarks } from './watermarks.js';
import { resolutionFigures } from '../resolve/users.js';

/**
 * The read model of `status` (and of the demo's closing view): what the state database says
 * about the watermarks, the sync table, the runs, the lock, the tenant and the quota. Reads
 * only. `renderStatus` is its text view.
 */

const when = (ms: number | null | undefined) => (ms ? DateTime.fromMillis(ms).toUTC().toFormat("yyyy-MM-dd HH:mm:ss'Z'") : '—');

/** The zone each kind's timestamp cursor is read in (the source's wall time). */
export function cursorZones(config: ResolvedConfig): Partial<Record<Kind, string>> {
  const zones: Partial<Record<Kind, string>> = {};
  for (const k of KINDS) {
    const cfg = config.kinds[k];
    if (cfg && cfg.cursor.mode !== 'id') zones[k] = cfg.time_zone ?? config.source.time_zone;
  }
  return zones;
}

/**
 * A timestamp watermark as an instant: the stored cursor is the source's zone-less wall time
 * (or carries an offset), shown beside UTC times it would look hours off. null for id cursors.
 */
function cursorInstant(value: string | null, zone: string | undefined): number | null {
  if (value === null || zone === undefined || /^-?\d+$/.test(value)) return null;
  let dt = DateTime.fromSQL(value.trim(), { zone });
  if (!dt.isValid) dt = DateTime.fromISO(value.trim(), { zone });
  return dt.isValid ? dt.toMillis() : null;
}

/** What the monthly quota is counted in: feishu.time_zone's calendar months, feishu.monthly_quota. */
export function quotaSettings(config: ResolvedConfig): { zone: string; limit: number | null } {
  return { zone: config.feishu.time_zone, limit: config.feishu.monthly_quota ?? null };
}

export async function collectStatus(db: Knex, t: StateTables, zones: Partial<Record<Kind, string>> = {}, quota: { zone: string; limit: number | null } = { zone: 'Asia/Shanghai', limit: null }) {
  const [watermarks, counts, oldest, runs, errors, holder, held] = await Promise.all([
    listWatermarks(db, t),
    statusCounts(db, t),
    oldestPending(db, t),
    lastRuns(db, t, 5),
    latestErrors(db, t, 10),
    lockHolder(db, t),
    heldCreates(db, t, 20),
  ]);
  const tenant = (await db.schema.hasTable(t.tenant)) ? await getTenantBinding(db, t) : null;
  const feishuQuota = await quotaFigures(db, t, quota);
  const users = await resolutionFigures(db, t);
  const byKind: Record<string, Record<string, number>> = {};
  for (const c of counts) (byKind[c.kind] ??= {})[c.status] = c.count;
  return {
    watermarks: watermarks.map((w) => ({
      kind: w.kind,
      cursor: w.cursor?.value ?? null,
      cursorAt: cursorInstant(w.cursor?.value ?? null, zones[w.kind as Kind]),
      key: w.cursor?.key ?? null,
      movedAt: w.updatedAt,
      lastRescanAt: w.lastRescanAt,
    })),
    counts: byKind,
    oldestPending: oldest ? { id: oldest.id, kind: oldest.kind, sourceKey: oldest.sourceKey, operation: oldest.operation, createdAt: oldest.createdAt, attempts: oldest.attempts } : null,
    lastRuns: runs,
    latestErrors: errors.map((e) => ({
      id: e.id,
      kind: e.kind,
      sourceKey: e.sourceKey,
      operation: e.operation,
      status: e.status,
      attempts: e.attempts,
      errorCode: e.errorCode,
      feishuCode: e.feishuCode,
      message: e.reasons ? e.reasons.join('; ') : e.feishuMsg,
      at: e.updatedAt,
    })),
    lock: holder,
    tenant,
    /** Successful Feishu calls this worker made in the current month, against feishu.monthly_quota. */
    feishu: { quota: feishuQuota },
    /** fields.user_id with `resolve`: the cached answers of Feishu's contact API, resigned users flagged. */
    ...(users && users.resolved + users.notFound > 0 ? { users } : {}),
    /** Creates held back until the failed or dead revoke of the version before them is retried. */
    heldTotal: held.total,
    held: held.items.map((h) => ({
      kind: h.create.kind,
      sourceKey: h.create.sourceKey,
      create: { id: h.create.id, status: h.create.status, version: h.create.version, createdAt: h.create.createdAt },
      revoke: {
        id: h.revoke.id,
        status: h.revoke.status,
        attempts: h.revoke.attempts,
        errorCode: h.revoke.errorCode,
        feishuCode: h.revoke.feishuCode,
        message: h.revoke.feishuMsg,
        at: h.revoke.updatedAt,
      },
    })),
  };
}

export type StatusView = Awaited<ReturnType<typeof collectStatus>>;

/** Cut a cell to `width`, keeping its head and tail (keys differ at either end): `OA-2026-…-000123`. */
export function fit(text: string, width: number): string {
  if (text.length <= width) return text;
  if (width <= 1) return text.slice(0, width);
  const head = Math.ceil((width - 1) / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (width - 1 - head))}`;
}

/**
 * Columns as wide as their widest cell, each capped: a long key is shortened with an
 * ellipsis instead of pushing the rest of its row out of line. The last column runs free.
 */
export function columns(header: readonly string[], rows: ReadonlyArray<readonly string[]>, caps: readonly number[]): string[] {
  const widths = header.map((h, i) => Math.min(caps[i] ?? 40, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))));
  const line = (cells: readonly string[]) =>
    '  ' +
    cells
      .map((c, i) => (i === cells.length - 1 ? c : fit(c, widths[i]!).padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

export function renderStatus(s: StatusView): string {
  const out: string[] = [];
  out.push('Watermarks');
  if (s.watermarks.length === 0) out.push('  (none yet: no cycle has run)');
  else
    out.push(
      ...columns(
        ['kind', 'cursor', 'key', 'moved', 'rescan'],
        s.watermarks.map((w) => [w.kind, w.cursorAt !== null ? when(w.cursorAt) : String(w.cursor ?? '—'), String(w.key ?? '—'), when(w.movedAt), when(w.lastRescanAt)]),
        [9, 32, 24, 20, 20],
      ),
    );
  const statuses = Object.values(OP_STATUS);
  out.push('', 'Sync table (operations per kind and status)');
  out.push(`  ${'kind'.padEnd(9)} ${statuses.map((st) => st.padStart(11)).join('')}`);
  for (const k of KINDS) {
    const c = s.counts[k];
    if (!c) continue;
    out.push(`  ${k.padEnd(9)} ${statuses.map((st) => String(c[st] ?? 0).padStart(11)).join('')}`);
  }
  out.push('', `Oldest pending: ${s.oldestPending ? `#${s.oldestPending.id} ${s.oldestPending.kind} ${fit(s.oldestPending.sourceKey, 40)} ${s.oldestPending.operation}, queued ${when(s.oldestPending.createdAt)}, ${s.oldestPending.attempts} attempt(s)` : 'none'}`);
  out.push(`Leader lock: ${s.lock ? `${s.lock.owner}, heartbeat ${when(s.lock.heartbeatAt)}` : 'free'}`);
  out.push(`Feishu tenant: ${s.tenant ? `${describeTenant(s.tenant)}, bound ${when(s.tenant.boundAt)}` : 'not bound yet (the first send binds it)'}`);
  const q = s.feishu.quota;
  out.push(
    `Feishu quota ${q.month}: ${q.used} call(s) used${q.limit !== null ? ` of ${q.limit} (${Math.floor((q.used / q.limit) * 100)} %), ${Math.max(0, q.limit - q.used)} left` : ' (no feishu.monthly_quota set)'}`,
  );
  if (s.users) {
    const u = s.users;
    out.push(
      `Resolved users: ${u.resolved} address(es) resolved, ${u.notFound} not found in Feishu (their records are invalid until found)${u.resigned > 0 ? `, ${u.resigned} resigned: ${u.resignedUsers.join(', ')}${u.resigned > u.resignedUsers.length ? ', …' : ''} (their records still sync; check that they should)` : ''}`,
    );
  }
  out.push('', 'Last runs');
  if (s.lastRuns.length === 0) out.push('  (none)');
  for (const r of s.lastRuns) {
    const c = (r.counts ?? {}) as Record<string, unknown>;
    const figures = ['read', 'created', 'revoked', 'unchanged', 'invalid', 'sent', 'failed', 'dead']
      .map((k) => `${k} ${Number(c[k] ?? 0)}`)
      .concat(Number(c.future ?? 0) > 0 ? [`held back (future cursor) ${Number(c.future)}`] : [])
      .concat(Number(c.revokesRefused ?? 0) > 0 ? [`revokes refused ${Number(c.revokesRefused)}`] : [])
      .join(', ');
    out.push(`  #${r.id} ${r.type} ${when(r.startedAt)} ${r.outcome}${r.finishedAt ? ` in ${((r.finishedAt - r.startedAt) / 1000).toFixed(1)}s` : ''}: ${figures}${r.error ? ` — ${r.error}` : ''}`);
    if (Number(c.halted ?? 0) > 0) out.push(`    sending halted: ${typeof c.haltReason === 'string' ? c.haltReason : 'Feishu auth or quota error (see the log)'}`);
  }
  if (s.heldTotal > 0) {
    out.push('', `Held: ${s.heldTotal} create(s) wait for the failed or dead revoke of the version before them (both would stand in Feishu);`);
    out.push('  fix the cause, then `npx attendance-sync retry --status failed` (or dead): the revoke goes first, then the create');
    for (const h of s.held) {
      const r = h.revoke;
      out.push(`  ${h.kind} ${h.sourceKey} create #${h.create.id} waits for revoke #${r.id} ${r.status}${r.feishuCode ? ` code ${r.feishuCode}` : ''}${r.errorCode ? ` ${r.errorCode}` : ''}: ${String(r.message ?? '').slice(0, 200)}`);
    }
    if (s.heldTotal > s.held.length) out.push(`  … and ${s.heldTotal - s.held.length} more`);
  }
  out.push('', 'Latest errors');
  if (s.latestErrors.length === 0) out.push('  (none)');
  else
    out.push(
      ...columns(
        ['at', 'kind', 'key', 'operation', 'status', 'code', 'message'],
        s.latestErrors.map((e) => [
          when(e.at),
          e.kind,
          e.sourceKey,
          e.operation,
          e.status,
          [e.feishuCode ? String(e.feishuCode) : '', e.errorCode ?? ''].filter(Boolean).join(' ') || '—',
          String(e.message ?? '').slice(0, 200),
        ]),
        [20, 9, 24, 9, 8, 28],
      ),
    );
  return out.join('\n') + '\n';
}
