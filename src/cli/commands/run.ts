import type { Command } from 'commander';
import { runCycle } from '../../pipeline/cycle.js';
import { openPipeline } from '../../pipeline/worker.js';
import { Daemon } from '../../worker/daemon.js';
import { Metrics, startMetricsServer } from '../../metrics/metrics.js';
import { loadContext } from '../context.js';

export function register(program: Command): void {
  program
    .command('run')
    .description('the daemon: sync on the cron schedule as the single leader of the state database; stops gracefully on SIGINT / SIGTERM')
    .action(async (_opts: unknown, cmd: Command) => {
      const { config, logger } = loadContext(cmd);
      const metrics = config.metrics.enabled ? new Metrics() : undefined;
      const p = await openPipeline(config, logger, metrics ? { metrics } : {});
      const daemon = new Daemon({
        lock: p.lock,
        runCycle: (signal, o) => runCycle(p.deps, { signal, rescan: o.rescan }),
        schedule: config.sync.schedule,
        rescanSchedule: config.sync.rescan_window_days > 0 ? config.sync.rescan_schedule : null,
        leaseMs: config.sync.lock_lease_seconds * 1000,
        shutdownTimeoutMs: config.sync.shutdown_timeout_ms,
        logger,
      });
      const server = metrics
        ? await startMetricsServer({
            host: config.metrics.host,
            port: config.metrics.port,
            metrics,
            health: () => {
              const s = daemon.status;
              const maxAgeMs = 3 * 60_000 + config.sync.lock_lease_seconds * 1000;
              const recent = s.lastCycleOk !== null && Date.now() - s.lastCycleOk < maxAgeMs;
              metrics.leader.set(s.state === 'leader' ? 1 : 0);
              return { ok: s.state === 'waiting' || (s.state === 'leader' && (recent || s.lastCycleOk === null) && !s.lastCycleError), ...s };
            },
          })
        : undefined;
      if (server) logger.info('metrics listening', { url: `${server.url}/metrics` });

      // pm2 stops with SIGINT (then SIGKILL after kill_timeout); systemd and docker with SIGTERM.
      const onSignal = (sig: string) => void daemon.stop(sig);
      process.once('SIGINT', () => onSignal('SIGINT'));
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      // Valid config, databases answer: tell pm2 (wait_ready) the process is up.
      process.send?.('ready');
      await daemon.start();
      server?.close();
      await p.close();
    });
}
