import type { Command } from 'commander';
import { runCycle } from '../../pipeline/cycle.js';
import { openPipelineWhenReachable } from '../../pipeline/startup.js';
import { rescanEnabled } from '../../pipeline/rescanWindow.js';
import { scheduledRescan } from '../../pipeline/onceRescan.js';
import { Daemon } from '../../worker/daemon.js';
import { judgeHealth, Metrics, startMetricsServer, type HealthInput } from '../../metrics/metrics.js';
import { describeError } from '../../errors.js';
import { loadContext } from '../context.js';
import { scheduledReconcile } from '../../reconcile/scheduled.js';
import { TenantMismatchError } from '../../pipeline/tenantBinding.js';
import { createConsole } from '../../console/server.js';
import { enabledKinds } from '../../pipeline/deps.js';

export function register(program: Command): void {
  program
    .command('run')
    .description('the daemon: sync on the cron schedule as the single leader of the state database; stops gracefully on SIGINT / SIGTERM')
    .action(async (_opts: unknown, cmd: Command) => {
      const { config, logger } = loadContext(cmd);
      const metrics = config.metrics.enabled ? new Metrics() : undefined;
      // A database still down at start-up (a reboot that starts the worker first) is waited
      // for, not crashed on; SIGINT / SIGTERM end the wait at once (exit 0).
      const waiting = new AbortController();
      const stopWaiting = (sig: string) => {
        logger.info('stopped while waiting for the databases', { signal: sig });
        waiting.abort(new Error(sig));
      };
      const onIntWaiting = () => stopWaiting('SIGINT');
      const onTermWaiting = () => stopWaiting('SIGTERM');
      process.once('SIGINT', onIntWaiting);
      process.once('SIGTERM', onTermWaiting);
      let opened: Awaited<ReturnType<typeof openPipelineWhenReachable>>;
      try {
        opened = await openPipelineWhenReachable(config, logger, metrics ? { metrics } : {}, { signal: waiting.signal });
      } finally {
        process.off('SIGINT', onIntWaiting);
        process.off('SIGTERM', onTermWaiting);
      }
      if (!opened) {
        // A probe of a host that does not answer may hold its connect attempt open up to the
        // connect timeout; nothing else is open, so the process does not wait for it.
        setTimeout(() => process.exit(process.exitCode ?? 0), 1_000).unref();
        return;
      }
      const p = opened;
      const startedAt = Date.now();
      let lastCycle: HealthInput['lastCycle'] = null;
      let lastGoodCycleAt: number | null = null;
      // A re-bind of the state while this instance waited for the lock: stop, exit 2.
      let fatal: TenantMismatchError | null = null;
      const daemon: Daemon = new Daemon({
        lock: {
          owner: p.lock.owner,
          tryAcquire: async () => {
            try {
              return await p.lock.tryAcquire();
            } catch (err) {
              if (!(err instanceof TenantMismatchError)) throw err;
              fatal ??= err;
              void daemon.stop('tenant mismatch');
              return false;
            }
          },
          renew: () => p.lock.renew(),
          release: () => p.lock.release(),
        },
        runCycle: async (signal, o) => {
          try {
            // A tick missed while the worker was down (a restart across it) is made up for from the stored last rescan.
            const r = await runCycle(p.deps, { signal, rescan: o.rescan || (await scheduledRescan(p.deps, logger)) });
            if (o.reconcile && !signal.aborted) await scheduledReconcile(p.deps, signal);
            lastCycle = { at: Date.now(), outcome: r.outcome, halted: r.send.halted, haltReason: r.send.haltReason, error: r.error };
            if (r.outcome !== 'failed' && r.send.halted === 0) lastGoodCycleAt = lastCycle.at;
          } catch (err) {
            // A cycle that could not even start (the state database is down) failed too.
            lastCycle = { at: Date.now(), outcome: 'failed', halted: 0, error: describeError(err) };
            throw err;
          }
        },
        schedule: config.sync.schedule,
        rescanSchedule: rescanEnabled(config) ? config.sync.rescan_schedule : null,
        reconcileSchedule: config.sync.reconcile_schedule === '0' ? null : config.sync.reconcile_schedule,
        leaseMs: config.sync.lock_lease_seconds * 1000,
        shutdownTimeoutMs: config.sync.shutdown_timeout_ms,
        logger,
      });
      const health = () => {
        const s = daemon.status;
        metrics?.leader.set(s.state === 'leader' ? 1 : 0);
        return judgeHealth({ state: s.state, startedAt, lastGoodCycleAt, lastCycle, staleAfterMs: config.metrics.stale_after_seconds * 1000 });
      };
      const server = metrics
        ? await startMetricsServer({
            host: config.metrics.host,
            port: config.metrics.port,
            metrics,
            health,
            console: createConsole({ db: p.dbs.state, tables: p.dbs.tables, config, health, kinds: enabledKinds(config).map(([k]) => k) }),
          })
        : undefined;
      if (server) logger.info('metrics listening', { url: `${server.url}/metrics`, console: `${server.url}/`, consoleActions: Boolean(config.console.token) });

      // pm2 stops with SIGINT (then SIGKILL after kill_timeout); systemd and docker with SIGTERM.
      const onSignal = (sig: string) => void daemon.stop(sig);
      process.once('SIGINT', () => onSignal('SIGINT'));
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      // Valid config, databases answer: tell pm2 (wait_ready) the process is up.
      process.send?.('ready');
      await daemon.start();
      server?.close();
      await p.close();
      if (fatal) throw fatal;
    });
}
