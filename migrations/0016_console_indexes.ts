import type { StateMigration } from './types.js';

/**
 * The console finds one employee's or one source key's operations among all kinds: two index
 * ranges instead of a scan of the sync table (the key index starts with the kind). Its
 * overview (and `status`) counts operations per kind and status: a scan of the narrow
 * (kind, status) index in group order instead of the whole table and a sort.
 */
const INDEXES = [
  ['user_id', 'id'],
  ['source_key', 'id'],
  ['kind', 'status'],
] as const;

const SUFFIX: Record<string, string> = { user_id: 'user', source_key: 'source', kind: 'kind_status' };
const nameOf = (table: string, cols: readonly string[]) => `${table}_${SUFFIX[cols[0]!]}_idx`;

export const migration: StateMigration = {
  name: '0016_console_indexes',
  async up(knex, t) {
    for (const cols of INDEXES) {
      try {
        await knex.schema.alterTable(t.syncRecords, (tb) => {
          tb.index([...cols], nameOf(t.syncRecords, cols));
        });
      } catch (err) {
        // MySQL / MariaDB commit DDL on their own: a re-run after a half-applied step finds the index.
        if (!/exists|duplicate/i.test(String((err as Error).message))) throw err;
      }
    }
  },
  async down(knex, t) {
    for (const cols of INDEXES) {
      await knex.schema.alterTable(t.syncRecords, (tb) => {
        tb.dropIndex([...cols], nameOf(t.syncRecords, cols));
      });
    }
  },
};
