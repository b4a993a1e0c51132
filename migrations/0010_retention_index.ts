import type { StateMigration } from './types.js';

/**
 * Retention deletes finished operations by age: one index range per (status, operation)
 * below a cut-off date, whatever the size of the sync table (the claim index is in id order
 * and would scan every recent row on each pass).
 */
export const migration: StateMigration = {
  name: '0010_retention_index',
  async up(knex, t) {
    const name = `${t.syncRecords}_retention_idx`;
    try {
      await knex.schema.alterTable(t.syncRecords, (tb) => {
        tb.index(['status', 'operation', 'updated_at'], name);
      });
    } catch (err) {
      // MySQL / MariaDB commit DDL on their own: a re-run after a half-applied step finds the index.
      if (!/exists|duplicate/i.test(String((err as Error).message))) throw err;
    }
  },
  async down(knex, t) {
    await knex.schema.alterTable(t.syncRecords, (tb) => {
      tb.dropIndex(['status', 'operation', 'updated_at'], `${t.syncRecords}_retention_idx`);
    });
  },
};
