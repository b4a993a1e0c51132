import type { Command } from 'commander';
import { resolveStateTarget } from '../../config/load.js';
import { connect } from '../../db/connect.js';
import { parseDatabaseUrl } from '../../db/url.js';
import { migrateLatest, migrateRollback, migrationStatus } from '../../pipeline/migrations.js';
import { globalOptions } from '../context.js';

export function register(program: Command): void {
  program
    .command('migrate')
    .description('create or update the state tables (needs only the state database: STATE_DATABASE_URL works without a config file)')
    .option('--rollback', 'undo the last batch of migrations')
    .option('--all', 'with --rollback: undo every migration (drops the state tables)')
    .option('--status', 'list applied and pending migrations, change nothing')
    .action(async (opts: { rollback?: boolean; all?: boolean; status?: boolean }, cmd: Command) => {
      const target = await resolveStateTarget({ configPath: globalOptions(cmd).config });
      const display = parseDatabaseUrl(target.url).display;
      const db = connect(target.url, { poolMax: 1 });
      try {
        if (opts.status) {
          const s = await migrationStatus(db, target.tablePrefix);
          process.stdout.write(
            `state database ${display} (prefix ${target.tablePrefix})\n` +
              s.applied.map((n) => `  applied  ${n}\n`).join('') +
              s.pending.map((n) => `  pending  ${n}\n`).join('') +
              (s.pending.length === 0 ? 'up to date\n' : `${s.pending.length} pending: run \`npx attendance-sync migrate\`\n`),
          );
          return;
        }
        if (opts.rollback) {
          const undone = await migrateRollback(db, target.tablePrefix, { all: opts.all });
          process.stdout.write(
            undone.length === 0 ? `nothing to roll back in ${display}\n` : `rolled back in ${display}: ${undone.join(', ')}\n`,
          );
          return;
        }
        const applied = await migrateLatest(db, target.tablePrefix);
        process.stdout.write(
          applied.length === 0
            ? `state tables already up to date in ${display} (prefix ${target.tablePrefix})\n`
            : `applied ${applied.length} migration(s) in ${display} (prefix ${target.tablePrefix}): ${applied.join(', ')}\n`,
        );
      } finally {
        await db.destroy();
      }
    });
}
