import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { AppError, ExitCode } from '../../errors.js';
import { KINDS } from '../../kinds.js';
import { openPipeline } from '../../pipeline/wiring.js';
import { keepLease, lockHolder } from '../../pipeline/leadership.js';
import { reconcile, type ReconcileResult } from '../../reconcile/reconcile.js';
import { driftLine, summaryLine, toJson } from '../../reconcile/report.js';
import { loadContext } from '../context.js';
import { setExitCode } from '../exit.js';
import { dateRange, selectKinds } from '../range.js';

export function register(program: Command): void {
  program
    .command('reconcile')
    .description("compare what Feishu holds with the sync table for a range of effective dates; --repair fixes the drift through the outbox; exit 1 while drift remains")
    .requiredOption('--from <date>', 'first effective date, YYYY-MM-DD')
    .requiredOption('--to <date>', 'last effective date, YYYY-MM-DD')
    .option('--kinds <list>', `comma-separated kinds (${KINDS.join(',')}); default: all configured`)
    .option('--repair', 're-create what is missing or withdrawn, revoke what should not stand, and send it (takes the worker lock)')
    .option('--json', 'print the result as one JSON document')
    .action(async (opts: { from: string; to: string; kinds?: string; repair?: boolean; json?: boolean }, cmd: Command) => {
      const { from, to, wanted } = dateRange(opts);
      const { config, logger } = loadContext(cmd);
      const kinds = selectKinds(config, wanted).map(([k]) => k);

      const repair = opts.repair === true;
      const p = await openPipeline(config, logger, { bindTenant: repair });
      const abort = new AbortController();
      const stop = () => abort.abort(new Error('interrupted'));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      let lease: { stop(): void } | null = null;
      try {
        // Repairs are sent: like `once`, only the lock holder may.
        if (repair) {
          if (!(await p.lock.tryAcquire())) {
            const holder = await lockHolder(p.dbs.state, p.dbs.tables);
            throw new AppError('LOCK_HELD', `another worker holds the lock of this state database${holder ? ` (${holder.owner})` : ''}: stop \`attendance-sync run\` or run reconcile without --repair`);
          }
          lease = keepLease(p.lock, config.sync.lock_lease_seconds * 1000, () => {
            logger.error('leader lock lost: stopping the reconcile', { owner: p.lock.owner });
            abort.abort(new Error('leadership lost'));
          });
        }
        const tty = process.stderr.isTTY === true && opts.json !== true;
        const bar = tty ? new cliProgress.SingleBar({ format: 'reconcile [{bar}] {value}/{total} query calls', hideCursor: true }, cliProgress.Presets.shades_classic) : null;
        let started = false;
        let result: ReconcileResult;
        try {
          result = await reconcile(p.deps, {
            from,
            to,
            kinds,
            repair,
            signal: abort.signal,
            onProgress: (done, total) => {
              if (!bar) return;
              if (!started) {
                bar.start(total, 0);
                started = true;
              }
              bar.setTotal(total);
              bar.update(done);
            },
          });
        } finally {
          bar?.stop();
        }
        await p.deps.quota?.flush();
        if (opts.json) process.stdout.write(JSON.stringify(toJson(result), null, 2) + '\n');
        else {
          for (const d of result.drifts) process.stdout.write(driftLine(d) + '\n');
          process.stdout.write(summaryLine(result, repair) + '\n');
        }
        logger.info('reconcile finished', { from, to, kinds, repair, calls: result.calls, drift: result.drifts.length, driftLeft: result.driftLeft });
        setExitCode(cmd, result.driftLeft > 0 || abort.signal.aborted ? ExitCode.RUNTIME : ExitCode.OK);
      } finally {
        lease?.stop();
        if (repair) await p.lock.release().catch(() => undefined);
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        await p.close();
      }
    });
}
