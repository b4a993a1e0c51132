import type { Command } from 'commander';
import { collectStatus, cursorZones, quotaSettings, renderStatus } from '../../state/status.js';
import { openDatabases } from '../../pipeline/wiring.js';
import { loadContext } from '../context.js';
import { runStatusAll } from './statusAllCommand.js';

export function register(program: Command): void {
  program
    .command('status')
    .description('watermarks, sync-table counts per kind and status, oldest pending, last runs, latest errors')
    .option('--json', 'print JSON')
    .option('--all', 'one line per configuration of the config directory (--config-dir, else $ATTENDANCE_SYNC_CONFIG_DIR, else config/)')
    .option('--config-dir <dir>', 'with --all: the directory of configurations')
    .action(async (opts: { json?: boolean; all?: boolean; configDir?: string }, cmd: Command) => {
      if (opts.all) return runStatusAll(cmd, opts);
      const { config } = loadContext(cmd);
      const dbs = openDatabases(config, { poolMax: 2 });
      try {
        const s = await collectStatus(dbs.state, dbs.tables, cursorZones(config), quotaSettings(config));
        process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : renderStatus(s));
      } finally {
        await dbs.close();
      }
    });
}
