import type { Command } from 'commander';
import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import { KINDS } from '../../kinds.js';
import { listWatermarks } from '../../state/watermarks.js';
import { latestErrors, oldestPending, statusCounts, OP_STATUS } from '../../state/syncRecords.js';
import { lastRuns } from '../../state/runs.js';
import { lockHolder } from '../../state/lock.js';
import type { StateTables } from '../../state/tables.js';
import { loadContext, openDatabases } from '../context.js';

const when = (ms: number | null | undefined) => (ms ? DateTime.fromMillis(ms).toUTC().toFormat("yyyy-MM-dd HH:mm:ss'Z'") : '—');

export async function collectStatus(db: Knex, t: StateTables) {
  const [watermarks, counts, oldest, runs, errors, holder] = await Promise.all([
    listWatermarks(db, t),
    statusCounts(db, t),
    oldestPending(db, t),
    lastRuns(db, t, 5),
    latestErrors(db, t, 10),
    lockHolder(db, t),
  ]);
  const byKind: Record<string, Record<string, number>> = {};
  for (const c of counts) (byKind[c.kind] ??= {})[c.status] = c.count;
  return {
    watermarks: watermarks.map((w) => ({ kind: w.kind, cursor: w.cursorValue, key: w.cursorKey, movedAt: w.updatedAt, lastRescanAt: w.lastRescanAt })),
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
  };
}

export function renderStatus(s: Awaited<ReturnType<typeof collectStatus>>): string {
  const out: string[] = [];
  out.push('Watermarks');
  if (s.watermarks.length === 0) out.push('  (none yet: no cycle has run)');
  for (const w of s.watermarks) out.push(`  ${w.kind.padEnd(9)} ${String(w.cursor ?? '—').padEnd(28)} key ${String(w.key ?? '—').padEnd(10)} moved ${when(w.movedAt)}  rescan ${when(w.lastRescanAt)}`);
  const statuses = Object.values(OP_STATUS);
  out.push('', 'Sync table (operations per kind and status)');
  out.push(`  ${'kind'.padEnd(9)} ${statuses.map((st) => st.padStart(11)).join('')}`);
  for (const k of KINDS) {
    const c = s.counts[k];
    if (!c) continue;
    out.push(`  ${k.padEnd(9)} ${statuses.map((st) => String(c[st] ?? 0).padStart(11)).join('')}`);
  }
  out.push('', `Oldest pending: ${s.oldestPending ? `#${s.oldestPending.id} ${s.oldestPending.kind} ${s.oldestPending.sourceKey} ${s.oldestPending.operation}, queued ${when(s.oldestPending.createdAt)}, ${s.oldestPending.attempts} attempt(s)` : 'none'}`);
  out.push(`Leader lock: ${s.lock ? `${s.lock.owner}, heartbeat ${when(s.lock.heartbeatAt)}` : 'free'}`);
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
  }
  out.push('', 'Latest errors');
  if (s.latestErrors.length === 0) out.push('  (none)');
  for (const e of s.latestErrors) {
    out.push(`  ${when(e.at)} ${e.kind} ${e.sourceKey} ${e.operation} ${e.status}${e.feishuCode ? ` code ${e.feishuCode}` : ''}${e.errorCode ? ` ${e.errorCode}` : ''}: ${String(e.message ?? '').slice(0, 200)}`);
  }
  return out.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('status')
    .description('watermarks, sync-table counts per kind and status, oldest pending, last runs, latest errors')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { config } = loadContext(cmd);
      const dbs = openDatabases(config, { poolMax: 2 });
      try {
        const s = await collectStatus(dbs.state, dbs.tables);
        process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : renderStatus(s));
      } finally {
        await dbs.close();
      }
    });
}
