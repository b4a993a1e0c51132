import type { Knex } from 'knex';
import { MIGRATIONS, type StateMigration } from '../../migrations/index.js';
import { stateTables, type StateTables } from './tables.js';

/**
 * knex migrations loaded from a static list rather than a directory scan, so the same code
 * runs from the TypeScript sources (tests) and from dist/ (the CLI), and each migration gets
 * the table names with the configured prefix.
 */
class StaticSource implements Knex.MigrationSource<StateMigration> {
  constructor(private readonly tables: StateTables) {}

  getMigrations(): Promise<StateMigration[]> {
    return Promise.resolve([...MIGRATIONS]);
  }

  getMigrationName(m: StateMigration): string {
    return m.name;
  }

  getMigration(m: StateMigration): Promise<Knex.Migration> {
    const t = this.tables;
    return Promise.resolve({ up: (knex: Knex) => m.up(knex, t), down: (knex: Knex) => m.down(knex, t) });
  }
}

function migratorConfig(prefix: string): Knex.MigratorConfig {
  const t = stateTables(prefix);
  return { migrationSource: new StaticSource(t), tableName: t.migrations };
}

/** Apply pending migrations; returns the names applied (empty when already up to date). */
export async function migrateLatest(db: Knex, prefix: string): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(migratorConfig(prefix))) as [number, string[]];
  return applied;
}

/** Undo the last batch (or everything with `all`); returns the names rolled back. */
export async function migrateRollback(db: Knex, prefix: string, opts: { all?: boolean } = {}): Promise<string[]> {
  const [, undone] = (await db.migrate.rollback(migratorConfig(prefix), opts.all ?? false)) as [number, string[]];
  return undone;
}

/** Undo the last applied migration only; returns its name (empty when none). */
export async function migrateDown(db: Knex, prefix: string): Promise<string[]> {
  const [, undone] = (await db.migrate.down(migratorConfig(prefix))) as [number, string[]];
  return undone;
}

/** Applied and pending migration names. */
export async function migrationStatus(db: Knex, prefix: string): Promise<{ applied: string[]; pending: string[] }> {
  const [done, pending] = (await db.migrate.list(migratorConfig(prefix))) as [Array<{ name: string } | string>, Array<{ file?: string; name?: string } | StateMigration>];
  return {
    applied: done.map((d) => (typeof d === 'string' ? d : d.name)),
    pending: pending.map((p) => ('name' in p && typeof p.name === 'string' ? p.name : String((p as { file?: string }).file))),
  };
}

/** True when every migration has been applied (the worker refuses to start otherwise). */
export async function isUpToDate(db: Knex, prefix: string): Promise<boolean> {
  const t = stateTables(prefix);
  if (!(await db.schema.hasTable(t.migrations))) return false;
  return (await migrationStatus(db, prefix)).pending.length === 0;
}
