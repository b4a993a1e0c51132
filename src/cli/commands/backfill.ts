import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { ConfigError, ExitCode } from '../../errors.js';
import { KINDS } from '../../kinds.js';
import { quotaOf, runBackfill } from '../../pipeline/backfill.js';
import { openPipeline } from '../../pipeline/wiring.js';
import { sendTrouble } from '../../pipeline/trouble.js';
import { loadContext } from '../context.js';
import { setExitCode } from '../exit.js';
import { dateRange, selectKinds } from '../range.js';

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
      const { from, to, wanted } = dateRange(opts);
      const { config, logger } = loadContext(cmd);
      const kinds = selectKinds(config, wanted);
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
        const tty = process.stderr.isTTY === true;
        const bar = tty ? new cliProgress.SingleBar({ format: 'backfill [{bar}] {value}/{total} rows | created {created} revoked {revoked} invalid {invalid}', hideCursor: true }, cliProgress.Presets.shades_classic) : null;
        let rows = 0;
        let lastLog = Date.now();
        const r = await runBackfill(p, kinds, { from, to }, {
          dryRun: opts.dryRun === true,
          resend: opts.resend === true,
          signal: abort.signal,
          onLeaseLost: () => {
            logger.error('leader lock lost: stopping the backfill', { owner: p.lock.owner });
            abort.abort(new Error('leadership lost'));
          },
          onStart: (n) => {
            rows = n;
            bar?.start(n, 0, { created: 0, revoked: 0, invalid: 0 });
          },
          onPage: (done, total) => {
            bar?.update(done, { created: total.created, revoked: total.revoked, invalid: total.invalid });
            if (!tty && Date.now() - lastLog > 5_000) {
              lastLog = Date.now();
              logger.info('backfill progress', { rows: done, of: rows, created: total.created, revoked: total.revoked, invalid: total.invalid });
            }
          },
        }).finally(() => bar?.stop());
        const total = r.plan;
        const sendCounts = r.send;
        const summary = `backfill ${from} … ${to}${opts.dryRun ? ' (dry run: nothing written, nothing sent)' : ''}: read ${total.read}, created ${total.created}, revoked ${total.revoked}, unchanged ${total.unchanged}, inactive ${total.inactive}, invalid ${total.invalid}, sent ${sendCounts.sent}, failed ${sendCounts.failed + sendCounts.dead}`;
        process.stdout.write(summary + '\n');
        if (opts.dryRun) {
          // One call per create and per revoke; a lookup after a lost reply adds one more.
          const needed = total.created + total.revoked;
          const q = await quotaOf(p);
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
        const trouble = opts.dryRun ? null : sendTrouble(r, 'the backfill');
        if (trouble) process.stderr.write(`attendance-sync backfill: ${trouble}\n`);
        setExitCode(cmd, r.interrupted || trouble !== null ? ExitCode.RUNTIME : ExitCode.OK);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        await p.close();
      }
    });
}
