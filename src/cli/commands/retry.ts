import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { isKind, KINDS } from '../../kinds.js';
import { retryOperations } from '../../state/syncRecords.js';
import { enabledKinds } from '../../pipeline/cycle.js';
import { loadContext, openDatabases } from '../context.js';

export function register(program: Command): void {
  program
    .command('retry')
    .description('queue failed (or dead) operations again; the next cycle sends them')
    .option('--status <status>', 'failed or dead', 'failed')
    .option('--kind <kind>', `only this kind (${KINDS.join(', ')})`)
    .option('--id <sourceKey>', 'only this source record')
    .action(async (opts: { status: string; kind?: string; id?: string }, cmd: Command) => {
      if (opts.status !== 'failed' && opts.status !== 'dead') throw new ConfigError([`--status: must be failed or dead (got "${opts.status}")`], 'invalid arguments');
      if (opts.kind !== undefined && !isKind(opts.kind)) throw new ConfigError([`--kind: must be one of ${KINDS.join(', ')}`], 'invalid arguments');
      const { config } = loadContext(cmd);
      const configured = enabledKinds(config).map(([k]) => k);
      if (opts.kind !== undefined && !configured.includes(opts.kind as (typeof KINDS)[number])) {
        throw new ConfigError([`--kind: ${opts.kind} is not configured and enabled in ${config.configPath} (configured: ${configured.join(', ') || 'none'})`], 'invalid arguments');
      }
      const dbs = openDatabases(config, { poolMax: 1 });
      try {
        if (opts.id !== undefined) {
          let q = dbs.state(dbs.tables.syncRecords).where({ source_key: opts.id });
          if (opts.kind) q = q.andWhere({ kind: opts.kind });
          const known = (await q.select('kind', 'status').orderBy('id')) as Array<{ kind: string; status: string }>;
          if (known.length === 0) {
            throw new ConfigError([`--id: no operation for source key "${opts.id}"${opts.kind ? ` of kind ${opts.kind}` : ''} in the sync table`], 'invalid arguments');
          }
          if (!known.some((r) => r.status === opts.status)) {
            process.stdout.write(`nothing to retry: source key "${opts.id}" has no ${opts.status} operation (its latest is ${known[known.length - 1]!.status})\n`);
            return;
          }
        }
        const n = await retryOperations(dbs.state, dbs.tables, {
          status: opts.status,
          ...(opts.kind ? { kind: opts.kind as (typeof KINDS)[number] } : {}),
          ...(opts.id ? { sourceKey: opts.id } : {}),
        });
        process.stdout.write(`${n} ${opts.status} operation(s) queued again${n > 0 ? ': the next cycle sends them' : ''}\n`);
      } finally {
        await dbs.close();
      }
    });
}
