import type { Command } from 'commander';
import { AppError, ConfigError, ExitCode } from '../../errors.js';
import { ensureMigrated } from '../../pipeline/migrations.js';
import { createLeaderLock, lockHolder } from '../../pipeline/leadership.js';
import { describeTenant, getTenantBinding, rebindTenant, stateSize, tenantDifferences, tenantOf } from '../../pipeline/tenantBinding.js';
import { openDatabases, ownerId } from '../../pipeline/wiring.js';
import { loadContext } from '../context.js';
import { setExitCode } from '../exit.js';

export function register(program: Command): void {
  program
    .command('rebind-tenant')
    .description('bind the state database to the configured Feishu tenant; forgets what was sent to the previous one, so everything is sent again')
    .option('--yes', 'do it (without: show what would happen)')
    .option('--keep-state', 'the configured tenant already holds what was sent (same tenant, new app id or base URL): change only the binding')
    .action(async (opts: { yes?: boolean; keepState?: boolean }, cmd: Command) => {
      const { config, logger } = loadContext(cmd);
      const dbs = openDatabases(config, { poolMax: 2 });
      try {
        await ensureMigrated(dbs.state, config.state.table_prefix);
        const current = tenantOf(config);
        const bound = await getTenantBinding(dbs.state, dbs.tables);
        const keepState = opts.keepState === true;
        if (bound && tenantDifferences(bound, current).length === 0) {
          process.stdout.write(`the state database is already bound to ${describeTenant(current)}: nothing to do\n`);
          return;
        }
        // Forgetting the state while the tenant stays the same would send everything again under
        // other idempotency keys: Feishu would hold every record twice.
        if (!keepState && bound && bound.host === current.host && bound.appId === current.appId && bound.namespace !== current.namespace) {
          throw new ConfigError(
            [`sync.namespace: the tenant is unchanged (${describeTenant(bound)}) but the namespace changed to ${current.namespace}; every record would be sent again under new keys and held twice. Set sync.namespace back to ${bound.namespace}, or keep the state with --keep-state`],
            'refusing to re-bind',
          );
        }
        const size = await stateSize(dbs.state, dbs.tables);
        const from = bound ? describeTenant(bound) : 'no tenant yet (never sent, or state from before tenant binding)';
        const what = keepState
          ? 'The sync table is kept: the configured tenant must already hold what it calls sent.'
          : `Forgets ${size.operations} operation(s), ${size.records} record version(s) and ${size.watermarks} watermark(s) of the previous tenant: ` +
            'the next `once` or `run` reads the source from the start and sends every approved record to the configured tenant ' +
            '(run `backfill` again for history older than what the source holds).';
        if (!opts.yes) {
          process.stdout.write(`would re-bind the state database\n  from ${from}\n  to   ${describeTenant(current)}\n${what}\nRun again with --yes to do it.\n`);
          setExitCode(cmd, ExitCode.USAGE);
          return;
        }
        // The worker's lock: no cycle may send while the state changes tenant under it.
        const lock = createLeaderLock(dbs.state, dbs.tables, { owner: ownerId(), leaseMs: config.sync.lock_lease_seconds * 1000 });
        if (!(await lock.tryAcquire())) {
          const holder = await lockHolder(dbs.state, dbs.tables);
          throw new AppError('LOCK_HELD', `another worker holds the lock of this state database${holder ? ` (${holder.owner})` : ''}: stop \`npx attendance-sync run\` first`);
        }
        try {
          const r = await rebindTenant(dbs.state, dbs.tables, current, { keepState });
          const f = r.forgotten;
          process.stdout.write(
            `the state database is now bound to ${describeTenant(current)} (was: ${from})\n` +
              (keepState
                ? 'the sync table was kept\n'
                : `forgot ${f.operations} operation(s), ${f.records} record version(s), ${f.watermarks} watermark(s): the next cycle sends everything to the new tenant\n`),
          );
          logger.warn('state database re-bound to another Feishu tenant', { from: bound ? { ...bound } : null, to: { ...current }, keepState, forgotten: f });
        } finally {
          await lock.release();
        }
      } finally {
        await dbs.close();
      }
    });
}
