import type { Command } from 'commander';
import { AppError, ExitCode } from '../../errors.js';
import { runCycle, type CycleResult } from '../../pipeline/cycle.js';
import { openPipeline } from '../../pipeline/wiring.js';
import { scheduledRescan } from '../../pipeline/onceRescan.js';
import { sendTrouble } from '../../pipeline/trouble.js';
import { keepLease } from '../../pipeline/leadership.js';
import { loadContext } from '../context.js';
import { setExitCode } from '../exit.js';

/** What kept a cycle from being ok, in one sentence for the operator (null when it was ok). */
export function onceTrouble(r: CycleResult): string | null {
  if (r.outcome === 'ok') return null;
  return (
    sendTrouble(r) ??
    `the rescan refused ${r.plan.revokesRefused} revoke(s) beyond sync.max_revoke_fraction (see the log; \`once --rescan --allow-mass-revoke\` when the deletions are real)`
  );
}

export function register(program: Command): void {
  program
    .command('once')
    .description('run one full sync cycle (extract, plan, send), then exit; non-zero if anything failed or is dead')
    .option('--rescan', 'also rescan the window of effective dates (sync.rescan_window_days); without it, a rescan runs when sync.rescan_schedule has fired since the last one')
    .option('--no-rescan', 'skip a rescan even when sync.rescan_schedule has one due')
    .option('--no-send', 'plan only: write operations to the sync table without sending them')
    .option('--allow-mass-revoke', 'with --rescan: revoke records gone from the source even beyond sync.max_revoke_fraction')
    .action(async (opts: { rescan?: boolean; send?: boolean; allowMassRevoke?: boolean }, cmd: Command) => {
      const { config, logger } = loadContext(cmd);
      const p = await openPipeline(config, logger, { bindTenant: opts.send !== false });
      const abort = new AbortController();
      const stop = () => abort.abort(new Error('signal'));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        if (!(await p.lock.tryAcquire())) {
          throw new AppError('LOCK_HELD', 'another worker holds the lock of this state database (is `npx attendance-sync run` active?); try again when it stops');
        }
        let lost = false;
        const lease = keepLease(p.lock, config.sync.lock_lease_seconds * 1000, () => {
          lost = true;
          logger.error('leader lock lost: stopping the cycle', { owner: p.lock.owner });
          abort.abort(new Error('leadership lost'));
        });
        try {
          const rescan = opts.rescan ?? (await scheduledRescan(p.deps, logger));
          const r = await runCycle(p.deps, { signal: abort.signal, rescan, send: opts.send !== false, allowMassRevoke: opts.allowMassRevoke === true });
          setExitCode(cmd, r.outcome === 'ok' && !lost ? ExitCode.OK : ExitCode.RUNTIME);
          const trouble = onceTrouble(r);
          if (trouble) process.stderr.write(`attendance-sync once: ${trouble}\n`);
        } finally {
          lease.stop();
          await p.lock.release();
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        await p.close();
      }
    });
}
