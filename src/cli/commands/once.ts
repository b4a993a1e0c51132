import type { Command } from 'commander';
import { AppError, ExitCode } from '../../errors.js';
import { runCycle } from '../../pipeline/cycle.js';
import { openPipeline } from '../../pipeline/worker.js';
import { keepLease } from '../../state/lock.js';
import { loadContext } from '../context.js';
import { setExitCode } from '../main.js';

export function register(program: Command): void {
  program
    .command('once')
    .description('run one full sync cycle (extract, plan, send), then exit; non-zero if anything failed or is dead')
    .option('--rescan', 'also rescan the window of effective dates (sync.rescan_window_days)')
    .option('--no-send', 'plan only: write operations to the sync table without sending them')
    .action(async (opts: { rescan?: boolean; send?: boolean }, cmd: Command) => {
      const { config, logger } = loadContext(cmd);
      const p = await openPipeline(config, logger);
      const abort = new AbortController();
      const stop = () => abort.abort(new Error('signal'));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        if (!(await p.lock.tryAcquire())) {
          throw new AppError('LOCK_HELD', 'another worker holds the lock of this state database (is `attendance-sync run` active?); try again when it stops');
        }
        let lost = false;
        const lease = keepLease(p.lock, config.sync.lock_lease_seconds * 1000, () => {
          lost = true;
          logger.error('leader lock lost: stopping the cycle', { owner: p.lock.owner });
          abort.abort(new Error('leadership lost'));
        });
        try {
          const r = await runCycle(p.deps, { signal: abort.signal, rescan: opts.rescan === true, send: opts.send !== false });
          setExitCode(cmd, r.outcome === 'ok' && !lost ? ExitCode.OK : ExitCode.RUNTIME);
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
