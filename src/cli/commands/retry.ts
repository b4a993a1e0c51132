import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { isKind, KINDS } from '../../kinds.js';
import { checkRetryRequest, performRetry } from '../../pipeline/retry.js';
import { enabledKinds } from '../../pipeline/deps.js';
import { openDatabases } from '../../pipeline/wiring.js';
import { loadContext } from '../context.js';

export function register(program: Command): void {
  program
    .command('retry')
    .description('queue failed (or dead) operations again; the next cycle sends them (creates only while still the current version)')
    .option('--status <status>', 'failed or dead', 'failed')
    .option('--kind <kind>', `only this kind (${KINDS.join(', ')})`)
    .option('--id <sourceKey>', 'only this source record')
    .action(async (opts: { status: string; kind?: string; id?: string }, cmd: Command) => {
      if (opts.status !== 'failed' && opts.status !== 'dead') throw new ConfigError([`--status: must be failed or dead (got "${opts.status}")`], 'invalid arguments');
      if (opts.kind !== undefined && !isKind(opts.kind)) throw new ConfigError([`--kind: must be one of ${KINDS.join(', ')}`], 'invalid arguments');
      const { config } = loadContext(cmd);
      checkRetryRequest(opts, enabledKinds(config).map(([k]) => k), config.configPath);
      const dbs = openDatabases(config, { poolMax: 1 });
      try {
        const r = await performRetry(dbs.state, dbs.tables, opts);
        process.stdout.write(r.lines.join('\n') + '\n');
      } finally {
        await dbs.close();
      }
    });
}
