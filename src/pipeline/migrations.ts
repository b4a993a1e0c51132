import type { Knex } from 'knex';
import { AppError, ExitCode } from '../errors.js';
import { isUpToDate } from '../state/migrate.js';

/** The state tables' migrations, as the `migrate` command and the commands that need them see them. */
export { isUpToDate, migrateLatest, migrateRollback, migrationStatus } from '../state/migrate.js';

/** Refuse (exit 2) a state database whose tables are missing or not migrated to the latest version. */
export async function ensureMigrated(db: Knex, prefix: string): Promise<void> {
  if (!(await isUpToDate(db, prefix))) {
    throw new AppError('STATE_NOT_MIGRATED', 'the state tables are missing or out of date: run `npx attendance-sync migrate` first', { exitCode: ExitCode.USAGE });
  }
}
