import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { isKind, KINDS } from '../../kinds.js';
import { retryWithOutcome } from '../../state/outbox.js';
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
        const r = await retryWithOutcome(dbs.state, dbs.tables, {
          status: opts.status,
          ...(opts.kind ? { kind: opts.kind as (typeof KINDS)[number] } : {}),
          ...(opts.id ? { sourceKey: opts.id } : {}),
        });
        const n = r.requeued;
        const lines = [`${n} ${opts.status} operation(s) queued again${n > 0 ? ': the next cycle sends them' : ''}`];
        if (r.superseded > 0) lines.push(`${r.superseded} create(s) of a version the source no longer has: superseded (Feishu never stored them)`);
        if (r.revokes > 0) lines.push(`${r.revokes} create(s) of a version the source no longer has: a revoke is queued (Feishu may hold them)`);
        if (r.kept > 0) lines.push(`${r.kept} create(s) left ${opts.status}: their source row is invalid now (see status); fix the row first`);
        process.stdout.write(lines.join('\n') + '\n');
      } finally {
        await dbs.close();
      }
    });
}
