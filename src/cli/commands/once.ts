import type { Command } from 'commander';
import { AppError, ExitCode } from '../../errors.js';
import { runCycle } from '../../pipeline/cycle.js';
import { openPipeline } from '../../pipeline/worker.js';
import { loadContext } from '../context.js';
import { setExitCode } from '../main.js';

export function register(program: Command): void {
  program
    .command('once')
    .description('run one full sync cycle (extract, plan, send), then exit; non-zero if anything failed or is dead')
    .option('--rescan', 'also rescan the window of effective dates (sync.rescan_window_days)')
    .option('--no-send', 'plan only: write operations to the sync table without sending them')
    .option('--allow-mass-revoke', 'with --rescan: revoke records gone from the source even beyond sync.max_revoke_fraction')
    .action(async (opts: { rescan?: boolean; send?: boolean; allowMassRevoke?: boolean }, cmd: Command) => {
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
        try {
          const r = await runCycle(p.deps, { signal: abort.signal, rescan: opts.rescan === true, send: opts.send !== false, allowMassRevoke: opts.allowMassRevoke === true });
          setExitCode(cmd, r.outcome === 'ok' ? ExitCode.OK : ExitCode.RUNTIME);
        } finally {
          await p.lock.release();
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        await p.close();
      }
    });
}
