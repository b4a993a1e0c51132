import type { Knex } from 'knex';
import type { StateTables } from '../src/state/tables.js';

/**
 * A state-table migration. It receives the table names (they carry the configured prefix).
 *
 * MySQL and MariaDB commit every DDL statement on its own, so a step can be half-applied
 * there: each step creates one table and skips the work when the table already exists.
 * Migrations are never edited once released; a change is a new numbered file.
 */
export interface StateMigration {
  readonly name: string;
  up(knex: Knex, t: StateTables): Promise<void>;
  down(knex: Knex, t: StateTables): Promise<void>;
}
