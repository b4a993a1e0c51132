import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { DateTime } from 'luxon';
import os from 'node:os';
import { AppError, ConfigError, ExitCode } from '../../errors.js';
import { isKind, KINDS, type Kind } from '../../kinds.js';
import { addCounts, emptyPlanCounts, type PlanCounts } from '../../plan/plan.js';
import { enabledKinds, rescanKind, sender } from '../../pipeline/cycle.js';
import { openPipeline } from '../../pipeline/worker.js';
import { effectiveDateColumn, sourceRelation } from '../../source/relation.js';
import { finishRun, startRun } from '../../state/runs.js';
import { requeueSentCreates } from '../../state/outbox.js';
import { keepLease, lockHolder } from '../../state/lock.js';
import { quotaFigures } from '../../state/quota.js';
import { quotaSettings } from './status.js';
import { loadContext } from '../context.js';
import { setExitCode } from '../main.js';

function date(name: string, v: string | undefined): string {
  const d = v ? DateTime.fromISO(v) : null;
  if (!v || !d?.isValid || !/^\d{4}-\d{2}-\d{2}$/.test(v)) throw new ConfigError([`${name}: a date as YYYY-MM-DD is required`], 'invalid arguments');
  return v;
}

export function register(program: Command): void {
  program
    .command('backfill')
    .description('sync the records whose effective date is in a range, regardless of the watermark (safe to run twice)')
    .requiredOption('--from <date>', 'first effective date, YYYY-MM-DD')
    .requiredOption('--to <date>', 'last effective date, YYYY-MM-DD')
    .option('--kinds <list>', `comma-separated kinds (${KINDS.join(',')}); default: all configured`)
    .option('--dry-run', 'read, map and plan, then roll back: write nothing, send nothing')
    .option('--resend', 'send already-sent versions again, with the same idempotency keys')
    .action(async (opts: { from: string; to: string; kinds?: string; dryRun?: boolean; resend?: boolean }, cmd: Command) => {
      const from = date('--from', opts.from);
      const to = date('--to', opts.to);
      if (to < from) throw new ConfigError(['--to: must not be before --from'], 'invalid arguments');
      const wanted = opts.kinds ? opts.kinds.split(',').map((s) => s.trim()) : null;
      for (const k of wanted ?? []) if (!isKind(k)) throw new ConfigError([`--kinds: unknown kind "${k}" (${KINDS.join(', ')})`], 'invalid arguments');
      const { config, logger } = loadContext(cmd);
      const configured = enabledKinds(config).map(([k]) => k as string);
      const unknown = (wanted ?? []).filter((k) => !configured.includes(k));
      if (unknown.length > 0) throw new ConfigError(unknown.map((k) => `--kinds: ${k} is not configured and enabled (configured: ${configured.join(', ') || 'none'})`), 'invalid arguments');
      const kinds = enabledKinds(config).filter(([k]) => !wanted || wanted.includes(k));
      if (kinds.length === 0) throw new ConfigError(['--kinds: none of these kinds is configured and enabled'], 'invalid arguments');

      const p = await openPipeline(config, logger, { bindTenant: opts.dryRun !== true });
      const abort = new AbortController();
      const stop = () => {
        logger.warn('backfill interrupted: run it again to continue (nothing is sent twice)');
        abort.abort(new Error('interrupted'));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        // Backfill takes the worker's own lock: it shares the rate budget with no one.
        if (!(await p.lock.tryAcquire())) {
          const holder = await lockHolder(p.dbs.state, p.dbs.tables);
          throw new AppError('LOCK_HELD', `another worker holds the lock of this state database${holder ? ` (${holder.owner})` : ''}: stop \`attendance-sync run\` (pm2 stop attendance-sync) and run the backfill again`);
        }
        const lease = keepLease(p.lock, config.sync.lock_lease_seconds * 1000, () => {
          logger.error('leader lock lost: stopping the backfill', { owner: p.lock.owner });
          abort.abort(new Error('leadership lost'));
        });
        const runId = opts.dryRun ? null : await startRun(p.dbs.state, p.dbs.tables, { type: 'backfill', host: os.hostname(), pid: process.pid });
        const total: PlanCounts = emptyPlanCounts();
        let sendCounts = { sent: 0, retried: 0, failed: 0, dead: 0, halted: 0 };
        try {
          let rows = 0;
          for (const [kind, cfg] of kinds) {
            const col = effectiveDateColumn(cfg);
            const c = (await sourceRelation(p.dbs.source, cfg).where(col, '>=', `${from} 00:00:00`).andWhere(col, '<', `${DateTime.fromISO(to).plus({ days: 1 }).toFormat('yyyy-MM-dd')} 00:00:00`).count({ n: '*' }).first()) as { n: number | string } | undefined;
            rows += Number(c?.n ?? 0);
          }
          const tty = process.stderr.isTTY === true;
          const bar = tty ? new cliProgress.SingleBar({ format: 'backfill [{bar}] {value}/{total} rows | created {created} revoked {revoked} invalid {invalid}', hideCursor: true }, cliProgress.Presets.shades_classic) : null;
          bar?.start(rows, 0, { created: 0, revoked: 0, invalid: 0 });
          let done = 0;
          let lastLog = Date.now();
          for (const [kind, cfg] of kinds) {
            if (abort.signal.aborted) break;
            if (opts.resend && !opts.dryRun) await requeueSentCreates(p.dbs.state, p.dbs.tables, { kind: kind as Kind, from, to });
            const counts = await rescanKind(p.deps, kind, cfg, { from, to }, {
              signal: abort.signal,
              dryRun: opts.dryRun === true,
              detectDeletes: false,
              onPage: (c) => {
                done += c.read;
                addCounts(total, c);
                bar?.update(done, { created: total.created, revoked: total.revoked, invalid: total.invalid });
                if (!tty && Date.now() - lastLog > 5_000) {
                  lastLog = Date.now();
                  logger.info('backfill progress', { rows: done, of: rows, created: total.created, revoked: total.revoked, invalid: total.invalid });
                }
              },
            });
            void counts;
          }
          bar?.stop();
          if (!opts.dryRun && !abort.signal.aborted) sendCounts = await sender(p.deps).drain(abort.signal);
        } finally {
          if (runId !== null) {
            await finishRun(p.dbs.state, p.dbs.tables, runId, {
              outcome: abort.signal.aborted ? 'interrupted' : sendCounts.failed + sendCounts.dead + sendCounts.halted > 0 ? 'partial' : 'ok',
              counts: { ...total, ...sendCounts, from, to },
            });
          }
          lease.stop();
          await p.lock.release();
        }
        const summary = `backfill ${from} … ${to}${opts.dryRun ? ' (dry run: nothing written, nothing sent)' : ''}: read ${total.read}, created ${total.created}, revoked ${total.revoked}, unchanged ${total.unchanged}, inactive ${total.inactive}, invalid ${total.invalid}, sent ${sendCounts.sent}, failed ${sendCounts.failed + sendCounts.dead}`;
        process.stdout.write(summary + '\n');
        if (opts.dryRun) {
          // One call per create and per revoke; a lookup after a lost reply adds one more.
          const needed = total.created + total.revoked;
          const q = await quotaFigures(p.dbs.state, p.dbs.tables, quotaSettings(config));
          const left = q.limit !== null ? Math.max(0, q.limit - q.used) : null;
          process.stdout.write(
            `Feishu calls needed: ${needed} (${total.created} create(s), ${total.revoked} revoke(s)); ` +
              (left !== null
                ? `monthly quota ${q.month}: ${q.used} of ${q.limit} used, ${left} left${needed > left ? ` — ${needed - left} more than is left: sending stops at the quota and the rest waits for the next month` : ''}`
                : `${q.used} call(s) used in ${q.month} (no feishu.monthly_quota set)`) +
              '\n',
          );
        }
        logger.info('backfill finished', { from, to, dryRun: opts.dryRun === true, ...total, ...sendCounts });
        setExitCode(cmd, abort.signal.aborted || sendCounts.failed + sendCounts.dead + sendCounts.halted > 0 ? ExitCode.RUNTIME : ExitCode.OK);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        await p.close();
      }
    });
}
